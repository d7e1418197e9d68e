"""Delta checkpoints in the worker's store: fenced like full ones, one transaction with the
version bump, deleted by the next full checkpoint; a partition loaded from a full
checkpoint and its deltas is the one that saved them; a checkpoint of the worker before
deltas still loads and gets deltas on top (SQLite; the cluster tests run PostgreSQL)."""

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from growing_city import T0, city_minute

from anomaly import Detector, npz
from citywatch import liveness_state, partition_state
from citywatch.checkpoints import CheckpointStore, Delta, deltas
from citywatch.worker import Partition, Worker, WorkerConfig
from telemetry import DeviceInfo, DeviceKind

pytestmark = pytest.mark.unit


def _url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"


async def _delta_versions(store: CheckpointStore) -> list[tuple[int, int]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(sa.select(deltas.c.partition, deltas.c.version))
        return sorted((int(p), int(v)) for p, v in rows)


def test_deltas_are_fenced_and_a_full_checkpoint_deletes_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await CheckpointStore.open(_url(tmp_path))
        try:
            assert await store.save(1, 8, 0, b"full1", b"[]", "a", liveness=b"{}")
            for v in (2, 3):
                assert await store.save_delta(1, v - 1, Delta(v, b"d", b"[]", b"{}"), "a")
            # Another worker saved meanwhile: refused, nothing written.
            assert not await store.save_delta(1, 2, Delta(3, b"late", b"[]", b"{}"), "b")
            assert not await store.save(1, 8, 2, b"late", b"[]", "b")
            cp = await store.load(1)
            assert cp is not None
            assert (cp.version, cp.base_version, cp.state) == (3, 1, b"full1")
            assert [(d.version, d.state) for d in cp.deltas] == [(2, b"d"), (3, b"d")]
            assert await _delta_versions(store) == [(1, 2), (1, 3)]  # the fenced full kept them
            with pytest.raises(ValueError, match="follows"):
                await store.save_delta(1, 3, Delta(5, b"d", b"[]", b"{}"), "a")

            assert await store.save(1, 8, 3, b"full4", b"[]", "a")
            assert await _delta_versions(store) == []
            cp = await store.load(1)
            assert cp is not None
            assert (cp.version, cp.base_version, cp.state, cp.deltas) == (4, 4, b"full4", ())
            [every] = await store.all()
            assert every == cp
        finally:
            await store.close()

    asyncio.run(scenario())


def _worker(tmp_path: Path, name: str, share: float = 1.0) -> Worker:
    return Worker(
        WorkerConfig(
            engine="amqp://unused",
            influx="http://unused",
            store_url=_url(tmp_path),
            data_dir=tmp_path / name,
            worker_id=name,
            snapshot_share=share,
        )
    )


def _feed(part: Partition, step: int) -> None:
    """A minute of the growing city into the partition: the detector, the devices'
    metadata (a few new ones a minute), their liveness."""
    batch = city_minute(np.random.default_rng(step), step)
    for device in sorted(set(batch.device.tolist())):
        ward = str(batch.ward[batch.device == device][0])
        part.registry.learn(
            DeviceInfo(device, DeviceKind.CABINET, ward, "Phố Huế", 21.0, 105.8 + step * 1e-4)
            if device.endswith("0")  # some move a little each minute: learned again
            else DeviceInfo(device, DeviceKind.CABINET, ward, "Phố Huế", 21.0, 105.8)
        )
        part.liveness.on_report(device, DeviceKind.CABINET, ward, T0 + step * 60_000)
    part.sink.handle(batch)
    if step % 9 == 4:
        part.detector.tick(T0 + (step + 5) * 60_000)
        part.liveness.check()


def _tables(det: Detector) -> dict[str, bytes]:
    return {k: v.tobytes() for k, v in npz.read(io.BytesIO(det.to_bytes())).items()}


def _assert_same_partition(got: Partition, want: Partition, *, liveness: bool = True) -> None:
    assert got.version == want.version
    assert _tables(got.detector) == _tables(want.detector)
    assert got.registry.to_bytes() == want.registry.to_bytes()
    if liveness:
        got_live = liveness_state.dump(got.liveness, got.sink.area_silence)
        assert got_live == liveness_state.dump(want.liveness, want.sink.area_silence)


def test_a_partition_loaded_from_full_and_deltas_is_the_one_that_saved(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await CheckpointStore.open(_url(tmp_path))
        saver, taker = _worker(tmp_path, "a", share=4.0), _worker(tmp_path, "b")
        saver.checkpoints = taker.checkpoints = store
        part = saver.partitions[2]
        try:
            await part._current()
            kinds = []
            for step in range(40):
                _feed(part, step)
                before = part.policy.full_bytes, part.policy.deltas
                assert await part._save()
                kinds.append("delta" if part.policy.deltas > before[1] else "full")
                if step % 6 == 5 or step == 39:
                    other = taker.partitions[2]
                    await other._current()
                    _assert_same_partition(other, part)
            # The first save is full, then deltas, a full one now and then.
            assert kinds[0] == "full"
            assert "full" in kinds[5:]
            assert kinds.count("delta") > kinds.count("full")
            cp = await store.load(2)
            assert cp is not None
            assert cp.deltas, "the last load had deltas to apply"
            # The taker goes on as the saver would: same state after one more minute.
            other = taker.partitions[2]
            await other._current()
            for p in (part, other):
                _feed(p, 40)
            # (Not their liveness: each stamps a report with its own clock, which goes on
            # by the wall time since the checkpoint.)
            _assert_same_partition(other, part, liveness=False)
            # The saver, fenced by the taker's save, reloads.
            assert await other._save()
            assert not await part._save()
            assert part.version == -1
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_checkpoint_of_the_worker_before_deltas_loads_and_gets_deltas(tmp_path: Path) -> None:
    async def scenario() -> None:
        old = _worker(tmp_path, "old")
        part = old.partitions[0]
        for step in range(5):
            _feed(part, step)
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.db'}")
        with engine.begin() as conn:  # the table and row as the worker before deltas wrote
            conn.execute(
                sa.text(
                    "CREATE TABLE cw_partition_checkpoints (partition INTEGER PRIMARY KEY, "
                    "partitions INTEGER NOT NULL, version BIGINT NOT NULL, state BLOB NOT "
                    "NULL, devices BLOB NOT NULL, saved_ms BIGINT NOT NULL, worker "
                    "VARCHAR(200) NOT NULL, clock_ms BIGINT, liveness BLOB, lease_ms BIGINT)"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO cw_partition_checkpoints VALUES "
                    "(0, 8, 7, :state, :devices, 1000, 'old', :clock, :liveness, 1000)"
                ),
                {
                    "state": part.detector.to_bytes(),
                    "devices": part.registry.to_bytes(),
                    "clock": T0 + 4 * 60_000,
                    "liveness": liveness_state.dump(part.liveness, part.sink.area_silence),
                },
            )
        engine.dispose()
        store = await CheckpointStore.open(_url(tmp_path))
        new = _worker(tmp_path, "new", share=4.0)  # a small city: deltas near a full one
        new.checkpoints = store
        try:
            cp = await store.load(0)
            assert cp is not None
            assert (cp.version, cp.full_version, cp.base_version, cp.deltas) == (7, None, 7, ())
            taken = new.partitions[0]
            await taken._current()
            part.version = 7
            _assert_same_partition(taken, part)
            for step in (5, 6):  # the new worker saves deltas on the old full checkpoint
                _feed(taken, step)
                assert await taken._save()
            cp = await store.load(0)
            assert cp is not None
            assert (cp.version, cp.base_version, len(cp.deltas)) == (9, 7, 2)
            again = _worker(tmp_path, "again")
            again.checkpoints = store
            await again.partitions[0]._current()
            _assert_same_partition(again.partitions[0], taken)
            assert cp.deltas[0].devices != b"[]"  # what the old row did not have
            loaded = partition_state.detector_of(cp, None)
            grown = taken.detector.registry.size
            assert loaded.registry.size == grown > part.detector.registry.size
        finally:
            await store.close()

    asyncio.run(scenario())
