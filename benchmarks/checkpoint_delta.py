"""A cluster worker's checkpoint per batch: full (what every batch saved before deltas)
beside a delta (what the batch changed), in one run, on a large partition; and the
takeover's load of a full checkpoint plus the deltas the policy lets pile up.

The partition: cabinets reporting all 11 metrics (170,005 series by default) with their
metadata and liveness, warmed up by three minutes of the whole partition reporting. Then
per batch size, ``--rounds`` batches of random devices' reports, each followed by both
saves (timed separately: serialising; with ``--store``, also the fenced write to the
database, PostgreSQL as the workers use it: give it a scratch database).

    createdb -h 127.0.0.1 -U postgres cw_bench
    .venv/bin/python benchmarks/checkpoint_delta.py \
        --store postgresql+asyncpg://postgres@127.0.0.1:5432/cw_bench
"""

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from anomaly import Detector
from anomaly.area_silence import AreaSilence
from citywatch import partition_state
from citywatch.checkpoints import Checkpoint, CheckpointStore, Delta, checkpoints, deltas
from citywatch.partition_state import TrackedDevices
from ingest.liveness import LivenessTracker
from telemetry import DeviceInfo, DeviceKind, ReadingBatch
from telemetry.catalogue import CATALOGUE

T0 = 1_764_300_000_000
METRICS = sorted(m.id for m in CATALOGUE[DeviceKind.CABINET].values())
BENCH_PARTITION = 999_999
T = TypeVar("T")


@dataclass
class City:
    devices: int
    detector: Detector = field(default_factory=Detector)
    registry: TrackedDevices = field(default_factory=TrackedDevices)
    tracker: LivenessTracker = field(default_factory=lambda: LivenessTracker(clock=lambda: 0.0))
    area: AreaSilence = field(init=False)
    heard: set[str] = field(default_factory=set)
    minute: int = 0

    def __post_init__(self) -> None:
        self.area = AreaSilence(self.detector.config)
        rng = np.random.default_rng(0)
        for d in range(self.devices):
            self.registry.learn(
                DeviceInfo(
                    f"cab-{d:06d}",
                    DeviceKind.CABINET,
                    f"ward_{d % 40:02d}",
                    "Phố Huế",
                    21.0 + rng.random() / 10,
                    105.8 + rng.random() / 10,
                )
            )

    def report(self, devs: np.ndarray, rng: np.random.Generator) -> None:
        """One report (every metric) of each of ``devs``, a minute after the last."""
        self.minute += 1
        n = len(devs) * len(METRICS)
        names = np.array([f"cab-{d:06d}" for d in devs.tolist()], dtype=object)
        device = np.repeat(names, len(METRICS))
        ward = np.repeat(np.array([f"ward_{d % 40:02d}" for d in devs.tolist()], object), 11)
        metric = np.tile(np.array(METRICS, np.int16), len(devs))
        ts = np.full(n, T0 + self.minute * 60_000, np.int64)
        value = 20 + rng.normal(0, 1, n) + metric  # a level per metric, noise
        self.detector.update(ReadingBatch(device, ward, metric, ts, value))
        for name in names.tolist():
            self.tracker.on_report(name, DeviceKind.CABINET, "ward_00", int(ts[0]))
        self.heard.update(names.tolist())

    def full(self) -> partition_state.Full:
        return partition_state.full(self.detector, self.registry, self.tracker, self.area)

    def delta(self, version: int) -> Delta:
        return partition_state.delta(
            version, self.detector, self.registry, self.tracker, self.area, self.heard
        )

    def saved(self) -> None:
        self.detector.checkpoint_saved()
        self.registry.changed.clear()
        self.heard.clear()


def _timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    started = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - started


async def _store_times(
    store: CheckpointStore, full: partition_state.Full, delta: Delta
) -> tuple[float, float]:
    """The fenced write of a full checkpoint and of a delta after it (s)."""
    await store.save(
        BENCH_PARTITION, 8, 0, full.state, full.devices, "bench", liveness=full.liveness
    )
    started = time.perf_counter()
    await store.save(
        BENCH_PARTITION, 8, 1, full.state, full.devices, "bench", liveness=full.liveness
    )
    full_s = time.perf_counter() - started
    started = time.perf_counter()
    await store.save_delta(
        BENCH_PARTITION, 2, Delta(3, delta.state, delta.devices, delta.liveness), "bench"
    )
    delta_s = time.perf_counter() - started
    async with store.engine.begin() as conn:
        await conn.execute(checkpoints.delete().where(checkpoints.c.partition == BENCH_PARTITION))
        await conn.execute(deltas.delete().where(deltas.c.partition == BENCH_PARTITION))
    return full_s, delta_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=170_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", help="also time the writes to this database (SQLAlchemy URL)")
    args = parser.parse_args()
    devices = -(-args.series // len(METRICS))
    rng = np.random.default_rng(1)
    started = time.perf_counter()
    city = City(devices)
    for _ in range(3):
        city.report(np.arange(devices), rng)
    city.saved()
    print(
        f"partition: {city.detector.registry.size:,} series of {devices:,} cabinets "
        f"(built in {time.perf_counter() - started:.1f} s)"
    )
    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(CheckpointStore.open(args.store)) if args.store else None
    base = city.full()
    for readings in (1_000, 10_000):
        rows = []
        for _ in range(args.rounds):
            city.report(rng.choice(devices, readings // len(METRICS), replace=False), rng)
            delta, delta_s = _timed(city.delta, 2)
            full, full_s = _timed(city.full)
            db = loop.run_until_complete(_store_times(store, full, delta)) if store else (0.0, 0.0)
            city.saved()
            rows.append((full_s, full.size, delta_s, partition_state.delta_size(delta), *db))
        full_s, full_b, delta_s, delta_b, db_full, db_delta = (
            statistics.median(c) for c in zip(*rows, strict=True)
        )
        print(
            f"{readings:>6,}-reading batches (median of {args.rounds}): "
            f"full {full_s * 1000:7.1f} ms {full_b / 1e6:6.2f} MB | "
            f"delta {delta_s * 1000:6.1f} ms {delta_b / 1e6:6.3f} MB | "
            f"delta/full: time {delta_s / full_s:.3f}, bytes {delta_b / full_b:.3f}"
        )
        if store:
            print(
                f"        database write: full {db_full * 1000:7.1f} ms, delta "
                f"{db_delta * 1000:6.1f} ms ({db_delta / db_full:.3f}); "
                f"per batch in all: full {(full_s + db_full) * 1000:.0f} ms, delta "
                f"{(delta_s + db_delta) * 1000:.0f} ms "
                f"({(delta_s + db_delta) / (full_s + db_full):.3f})"
            )
        # The takeover: the full checkpoint and as many deltas as the policy (share 1)
        # lets pile up before the next full one.
        k = max(1, int(base.size // delta_b))
        deltas = []
        for v in range(2, k + 2):
            city.report(rng.choice(devices, readings // len(METRICS), replace=False), rng)
            deltas.append(city.delta(v))
            city.saved()
        cp = Checkpoint(0, 8, k + 1, base.state, base.devices, 0, "bench", 0, base.liveness, 0, 1)
        with_deltas = Checkpoint(**{**cp.__dict__, "deltas": tuple(deltas)})

        def load(c: Checkpoint) -> None:
            partition_state.detector_of(c, None)
            partition_state.devices_of(c)
            partition_state.liveness_into(c, LivenessTracker(), AreaSilence(city.detector.config))

        alone = Checkpoint(**{**cp.__dict__, "version": 1})
        plain_s = min(_timed(load, alone)[1] for _ in range(2))  # the first pays page faults
        load_s = min(_timed(load, with_deltas)[1] for _ in range(2))
        print(
            f"        load: full alone {plain_s:.2f} s; full + {k} deltas {load_s:.2f} s "
            f"({load_s / plain_s:.2f}x)"
        )
        base = city.full()
        city.saved()
    if store:
        loop.run_until_complete(store.close())
    loop.close()


if __name__ == "__main__":
    main()
