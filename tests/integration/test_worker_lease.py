"""A partition that gets no messages after its worker died (every device of its wards
fell silent with it) is claimed by another worker once the dead one's lease ran out, and
its silent devices are raised: offline (liveness) and dropped out (the detector), on the
checkpoint's clock carried on by the wall time since. Real PostgreSQL and influxd; no
broker is needed (the timers do not consume)."""

import asyncio
import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import Endpoint, fresh_database

from alerts.engine import make_engine
from alerts.schema import alerts
from alerts.store import AlertStore
from anomaly import Detector
from anomaly.area_silence import AreaSilence
from citywatch import liveness_state
from citywatch.checkpoints import CheckpointStore
from citywatch.detector_sink import DataClock
from citywatch.membership import Membership
from citywatch.worker import ArrivalLiveness, Worker, WorkerConfig
from ingest.registry import DeviceRegistry
from telemetry import DeviceKind, ReadingBatch, Report
from telemetry.influxdb import AsyncInfluxClient

pytestmark = pytest.mark.integration

PARTITION = 5
MINUTE = 60_000


def _silent_partition_checkpoint(t0: int) -> tuple[bytes, bytes, int]:
    """An hour of two cabinets reporting every minute: the detector's state, the
    liveness state and the clock at the last report."""
    detector = Detector()
    clock = DataClock()
    tracker = ArrivalLiveness(clock)
    reports, wards = [], []
    for minute in range(60):
        for device in ("cab-000001", "cab-000002"):
            ts = t0 + minute * MINUTE
            metrics: dict[str, float | bool] = {"temp_inside": 30.0 + (minute % 3) * 0.1}
            reports.append(Report(1, device, DeviceKind.CABINET, ts, minute, metrics))
            wards.append("phuong_hoan_kiem")
            tracker.on_report(device, DeviceKind.CABINET, "phuong_hoan_kiem", ts)
    detector.update(ReadingBatch.from_reports(reports, wards))
    state = liveness_state.dump(tracker, AreaSilence(detector.config))
    return detector.to_bytes(), state, t0 + 59 * MINUTE


def test_a_silent_partition_is_claimed_after_its_lease_and_its_devices_raised(
    influx: Endpoint, tmp_path: Path
) -> None:
    database = f"lease_{os.getpid()}_{int(time.time())}"
    now_ms = time.time_ns() // 1_000_000
    t0 = now_ms - 3 * 3_600_000

    async def scenario(store_url: str) -> tuple[list[tuple[str, str, str]], int, str, int]:
        checkpoints = await CheckpointStore.open(store_url)
        state, liveness, clock_ms = _silent_partition_checkpoint(t0)
        # Saved by a worker that died 10 minutes ago (wall time), as its clock read then.
        assert await checkpoints.save(
            PARTITION,
            8,
            0,
            state,
            DeviceRegistry().to_bytes(),
            "dead-worker",
            liveness=liveness,
            clock_ms=clock_ms,
            now_ms=now_ms - 10 * MINUTE,
        )
        workers = []
        for name in ("survivor", "other"):
            worker = Worker(
                WorkerConfig(
                    engine="amqp://unused",
                    influx=influx.url,
                    store_url=store_url,
                    database=database,
                    data_dir=tmp_path / name,
                    worker_id=name,
                )
            )
            worker.checkpoints = checkpoints
            worker.membership = await Membership.open(checkpoints.engine, lease_ms=15_000)
            worker.store = await AlertStore.open(store_url, clock=worker.clock.now_ms)
            worker.influx = AsyncInfluxClient(influx.url, database)
            workers.append(worker)
        survivor, other = workers
        try:
            await survivor._tick_once()  # claims partition 5, its timers act
            await other._tick_once()  # the lease is fresh again: nothing to claim
            await survivor._tick_once()  # a tick more: the alert timers
            [lease] = await checkpoints.leases()
            held = [p.number for w in workers for p in w.partitions if p.holds]
            assert held == [PARTITION]
        finally:
            for worker in workers:
                await worker.store.close()
                await worker.influx.aclose()
            await checkpoints.close()
        engine = make_engine(store_url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(sa.select(alerts.c.device, alerts.c.type, alerts.c.state))
                found = sorted((str(d), str(t), str(s)) for d, t, s in rows)
        finally:
            await engine.dispose()
        return found, lease.version, lease.worker, survivor.partitions[PARTITION].clock.now_ms()

    with fresh_database() as url:
        found, version, holder, clock_now = asyncio.run(scenario(url))
    # The dead worker's v1, the claim's v2, the tick that raised the devices v3; the
    # other worker claimed nothing.
    assert (version, holder) == (3, "survivor")
    # The clock went on from the checkpoint by the 10 minutes since its save.
    assert clock_now - (t0 + 59 * MINUTE) >= 10 * MINUTE
    devices = {"cab-000001", "cab-000002"}
    assert {d for d, t, _ in found if t == "offline"} == devices
    assert {d for d, t, _ in found if t == "dropout"} == devices
