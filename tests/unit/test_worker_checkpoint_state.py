"""What a cluster worker carries over in a partition's checkpoint besides the detector:
the partition's clock, the liveness tracker and the area silences; and the checkpoint
table of an older worker gains the columns that hold them."""

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from anomaly import DetectorConfig
from anomaly.area_silence import AreaSilence
from citywatch import liveness_state
from citywatch.checkpoints import CheckpointStore
from citywatch.detector_sink import DataClock
from citywatch.worker import ArrivalLiveness
from telemetry import DeviceKind

pytestmark = pytest.mark.unit


class Wall:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def test_a_resumed_clock_goes_on_from_the_checkpoint_by_the_wall_time_since() -> None:
    wall = Wall()
    clock = DataClock(wall)
    assert clock.reading() is None
    clock.observe(5_000_000)
    wall.ms += 300
    reading = clock.reading()
    assert reading == (5_000_300, wall.ms)
    wall.ms += 2_000  # the fail-over
    other = DataClock(wall)
    other.resume(*reading)
    assert other.now_ms() == 5_002_300
    other.resume(4_000_000, wall.ms)  # never backwards
    assert other.now_ms() == 5_002_300


def test_arrival_liveness_stamps_each_report_with_its_own_time() -> None:
    """A backlog read in one go: every device was heard when it reported."""
    wall = Wall()
    clock = DataClock(wall)
    tracker = ArrivalLiveness(clock)
    t0 = 1_764_300_000_000
    for minute in range(10):  # ten minutes of two devices, one of them stops after 2
        tracker.on_report("busy", DeviceKind.CABINET, "w", t0 + minute * 60_000)
        if minute < 2:
            tracker.on_report("quiet", DeviceKind.CABINET, "w", t0 + minute * 60_000)
    assert clock.now_ms() == t0 + 9 * 60_000
    assert [c.device for c in tracker.check()] == ["quiet"]  # 8 min > 3 periods + 10 s


def test_liveness_state_round_trip() -> None:
    clock = DataClock(Wall())
    tracker = ArrivalLiveness(clock)
    tracker.on_report("cab-1", DeviceKind.CABINET, "w", 1_764_300_000_000)
    area = AreaSilence(DetectorConfig())
    area.change("cab-2", "w", online=False, now_ms=7, ward_devices=2)
    data = liveness_state.dump(tracker, area)

    tracker2, area2 = ArrivalLiveness(DataClock(Wall())), AreaSilence(DetectorConfig())
    liveness_state.load(data, tracker2, area2)
    assert tracker2.to_bytes() == tracker.to_bytes()
    assert (area2.offline_at, area2.active) == ({"cab-2": ("w", 7)}, area.active)
    with pytest.raises(ValueError, match="damaged"):
        liveness_state.load(b"{}", tracker2, area2)


def test_an_older_checkpoint_table_gains_the_liveness_columns(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"

    async def scenario() -> None:
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.db'}")
        with engine.begin() as conn:  # the table as the first release made it
            conn.execute(
                sa.text(
                    "CREATE TABLE cw_partition_checkpoints (partition INTEGER PRIMARY KEY, "
                    "partitions INTEGER NOT NULL, version BIGINT NOT NULL, state BLOB NOT "
                    "NULL, devices BLOB NOT NULL, saved_ms BIGINT NOT NULL, worker "
                    "VARCHAR(200) NOT NULL)"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO cw_partition_checkpoints VALUES (3, 8, 4, x'00', x'5b5d', "
                    "1000, 'old')"
                )
            )
        engine.dispose()
        store = await CheckpointStore.open(url)
        try:
            old = await store.load(3)
            assert old is not None
            assert (old.version, old.clock_ms, old.liveness, old.lease_ms) == (4, None, None, None)
            [lease] = await store.leases()
            assert (lease.partition, lease.version, lease.lease_ms) == (3, 4, 1000)
            saved = await store.save(
                3, 8, 4, b"s", b"[]", "new", liveness=b"{}", clock_ms=77, now_ms=2000
            )
            assert saved
            assert await store.renew({3: 5}, "new") == {3}
            assert await store.renew({3: 5}, "other") == set()  # not its lease
            assert await store.renew({3: 4}, "new") == set()  # an old version: lost
            new = await store.load(3)
            assert new is not None
            assert (new.version, new.clock_ms, new.liveness, new.saved_ms) == (5, 77, b"{}", 2000)
        finally:
            await store.close()

    asyncio.run(scenario())
