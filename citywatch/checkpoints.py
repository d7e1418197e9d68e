"""Per-partition detector checkpoints in the shared database, with a version fence.

One row per partition: a version that every save increments, and a full checkpoint (the
detector's :meth:`anomaly.Detector.to_bytes`, the device registry, the liveness) made at
``full_version``. A worker saves with ``version = what it loaded``: a worker that has lost
its partition (another one took over and saved since) finds the fence moved and must
reload instead of overwriting newer baselines.

A save is either full (the row's blobs replaced, ``full_version`` = the new version, the
partition's deltas deleted) or a *delta*: the fenced version bump and a row of
``cw_partition_checkpoint_deltas`` holding what changed since the version before (the
detector's touched rows, :meth:`anomaly.Detector.delta_bytes`; the devices learned; the
liveness of the devices heard), in one transaction. The saved state of version ``v`` is
the full checkpoint with the deltas ``full_version + 1 .. v`` applied in order
(:mod:`citywatch.partition_state`). A row of a worker before deltas has no
``full_version``: its blobs are the full checkpoint of ``version``.

The table is the worker's own (``cw_partition_checkpoints``), created idempotently when
the worker starts, in the same PostgreSQL as the alert store but not part of the alert
schema: it is cluster bookkeeping with one reader and writer (``citywatch worker``), the
alert store's migrations stay with the alert layer (which others change in parallel),
and dropping the table only costs the baselines (every series re-learns them).

Besides the detector, a checkpoint carries what decides a device's liveness: the
partition's clock (platform time, :class:`citywatch.detector_sink.DataClock`, as it read
at the save) and the liveness tracker's per-device state (when each device was last
heard on that clock, online or not). A worker taking a partition over thus raises a
device that fell silent before the fail-over, and judges the others' silence from when
they were really last heard, not from its own start.

The row is also the partition's *lease* for the timers (dropouts, liveness timeouts):
only the worker that saved the held version ticks a partition, refreshing ``lease_ms``
(fenced by the version) every tick; when a partition gets no messages at all and its
holder is gone, the lease runs out and another worker claims it (a fenced save).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts.engine import make_engine

metadata = sa.MetaData()
checkpoints = sa.Table(
    "cw_partition_checkpoints",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("partitions", sa.Integer, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("state", sa.LargeBinary, nullable=False),
    sa.Column("devices", sa.LargeBinary, nullable=False),
    sa.Column("saved_ms", sa.BigInteger, nullable=False),
    sa.Column("worker", sa.String(200), nullable=False),
    # Added after the first release (``_upgrade`` adds them to an older table):
    sa.Column("clock_ms", sa.BigInteger),
    sa.Column("liveness", sa.LargeBinary),
    sa.Column("lease_ms", sa.BigInteger),
    sa.Column("full_version", sa.BigInteger),
)
_ADDED = ("clock_ms", "liveness", "lease_ms", "full_version")
_READ_ATTEMPTS = 5
deltas = sa.Table(
    "cw_partition_checkpoint_deltas",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("state", sa.LargeBinary, nullable=False),
    sa.Column("devices", sa.LargeBinary, nullable=False),
    sa.Column("liveness", sa.LargeBinary, nullable=False),
)


def _upgrade(conn: Connection) -> None:
    """Create the table, or add the columns a table of an older worker lacks."""
    metadata.create_all(conn, checkfirst=True)
    have = {c["name"] for c in sa.inspect(conn).get_columns(checkpoints.name)}
    for name in _ADDED:
        if name not in have:
            column = checkpoints.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {checkpoints.name} ADD COLUMN {name} {kind}"))


@dataclass(frozen=True)
class Delta:
    """What one save changed since the version before it."""

    version: int
    state: bytes
    """:meth:`anomaly.Detector.delta_bytes`"""
    devices: bytes
    """The devices' metadata learned since (a JSON list of ``DeviceInfo``)."""
    liveness: bytes
    """:func:`citywatch.liveness_state.dump` of the devices whose liveness changed."""


async def create_tables(engine: AsyncEngine, create: Callable[[Connection], None]) -> None:
    """Run ``create`` (idempotent DDL) in a transaction, again if it fails: two workers
    starting at once race to create a table, and one of them loses."""
    for attempt in range(5):
        try:
            async with engine.begin() as conn:
                await conn.run_sync(create)
            return
        except DBAPIError:
            if attempt == 4:
                raise


@dataclass(frozen=True)
class Checkpoint:
    """The saved state of ``version``: the full checkpoint of :attr:`base_version`
    (``state``, ``devices``, ``liveness``) and then :attr:`deltas`."""

    partition: int
    partitions: int
    version: int
    state: bytes
    """:meth:`anomaly.Detector.to_bytes` at :attr:`base_version`"""
    devices: bytes
    """:meth:`ingest.registry.DeviceRegistry.to_bytes`: the partition's devices' metadata,
    which decides the tags of their points (a cable segment's route)."""
    saved_ms: int
    worker: str
    clock_ms: int | None = None
    """The partition's platform clock at the save (None: no device time seen yet, or a
    checkpoint of an older worker)."""
    liveness: bytes | None = None
    """:meth:`ingest.liveness.LivenessTracker.to_bytes` (None from an older worker)."""
    lease_ms: int | None = None
    """When the holder last confirmed it still ticks this partition (wall time)."""
    full_version: int | None = None
    """The version the blobs were saved at (None: a worker before deltas, ``version``)."""
    deltas: tuple[Delta, ...] = ()
    """Versions ``base_version + 1 .. version``, in order."""

    @property
    def base_version(self) -> int:
        return self.version if self.full_version is None else self.full_version


@dataclass(frozen=True)
class Lease:
    partition: int
    version: int
    worker: str
    lease_ms: int


class CheckpointStore:
    """``await CheckpointStore.open(url)``; the store URL of the alert store works."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    async def open(cls, url: str) -> "CheckpointStore":
        engine = make_engine(url)
        await create_tables(engine, _upgrade)
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def version(self, partition: int) -> int:
        """The saved version (0: never saved)."""
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                sa.select(checkpoints.c.version).where(checkpoints.c.partition == partition)
            )
        return int(found or 0)

    async def load(self, partition: int) -> Checkpoint | None:
        found = await self._read(checkpoints.c.partition == partition)
        return found[0] if found else None

    async def all(self) -> list[Checkpoint]:
        return await self._read(sa.true())

    async def _read(self, which: sa.ColumnElement[bool]) -> list[Checkpoint]:
        """The rows with their deltas. Read in two statements: a full save between them
        deletes deltas, which shows as a gap in the versions, and the read is retried."""
        for _ in range(_READ_ATTEMPTS):
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        sa.select(checkpoints).where(which).order_by(checkpoints.c.partition)
                    )
                ).all()
                found = [Checkpoint(*row) for row in rows]
                wanted = [c for c in found if c.version > c.base_version]
                got: dict[int, list[Delta]] = {c.partition: [] for c in wanted}
                if wanted:
                    d = deltas.c
                    listed = await conn.execute(
                        sa.select(d.partition, d.version, d.state, d.devices, d.liveness)
                        .where(
                            sa.or_(
                                *(
                                    sa.and_(
                                        d.partition == c.partition,
                                        d.version > c.base_version,
                                        d.version <= c.version,
                                    )
                                    for c in wanted
                                )
                            )
                        )
                        .order_by(d.partition, d.version)
                    )
                    for partition, *delta in listed:
                        got[partition].append(Delta(*delta))
            if all(
                [x.version for x in got[c.partition]]
                == list(range(c.base_version + 1, c.version + 1))
                for c in wanted
            ):
                return [replace(c, deltas=tuple(got.get(c.partition, ()))) for c in found]
        raise RuntimeError("checkpoint deltas kept changing while read")

    async def save(
        self,
        partition: int,
        partitions: int,
        expected: int,
        state: bytes,
        devices: bytes,
        worker: str,
        *,
        liveness: bytes | None = None,
        clock_ms: int | None = None,
        now_ms: int | None = None,
    ) -> bool:
        """Store ``state`` as version ``expected + 1`` if the saved one is still
        ``expected``; False if another worker saved meanwhile (the fence). ``now_ms``:
        the wall time ``clock_ms`` was read at (default: now)."""
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        values = {
            "partitions": partitions,
            "version": expected + 1,
            "state": state,
            "devices": devices,
            "saved_ms": now,
            "worker": worker,
            "clock_ms": clock_ms,
            "liveness": liveness,
            "lease_ms": now,
            "full_version": expected + 1,
        }
        async with self.engine.begin() as conn:
            if expected == 0:
                found = await conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(checkpoints)
                    .where(checkpoints.c.partition == partition)
                )
                if found:
                    return False
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            checkpoints.insert().values(partition=partition, **values)
                        )
                except DBAPIError:  # another worker inserted first
                    return False
            else:
                done = await conn.execute(
                    checkpoints.update()
                    .where(checkpoints.c.partition == partition, checkpoints.c.version == expected)
                    .values(**values)
                )
                if done.rowcount != 1:
                    return False
            # Only once the fence held: the deltas before this full checkpoint.
            await conn.execute(deltas.delete().where(deltas.c.partition == partition))
            return True

    async def save_delta(
        self,
        partition: int,
        expected: int,
        delta: Delta,
        worker: str,
        *,
        clock_ms: int | None = None,
        now_ms: int | None = None,
    ) -> bool:
        """Store ``delta`` (what changed since ``expected``) as version ``expected + 1``,
        fenced as :meth:`save`; the version bump and the delta are one transaction."""
        if expected < 1 or delta.version != expected + 1:
            raise ValueError("a delta follows a saved version, as the next one")
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        c = checkpoints.c
        async with self.engine.begin() as conn:
            done = await conn.execute(
                checkpoints.update()
                .where(c.partition == partition, c.version == expected)
                .values(
                    version=expected + 1,
                    # a row of a worker before deltas: its blobs are version ``expected``
                    full_version=sa.func.coalesce(c.full_version, expected),
                    saved_ms=now,
                    worker=worker,
                    clock_ms=clock_ms,
                    lease_ms=now,
                )
            )
            if done.rowcount != 1:
                return False
            await conn.execute(
                deltas.insert().values(
                    partition=partition,
                    version=delta.version,
                    state=delta.state,
                    devices=delta.devices,
                    liveness=delta.liveness,
                )
            )
            return True

    async def leases(self) -> list[Lease]:
        """Every partition's version, holder and lease (without the state)."""
        c = checkpoints.c
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(
                    c.partition, c.version, c.worker, sa.func.coalesce(c.lease_ms, c.saved_ms)
                )
            )
        return [Lease(int(p), int(v), str(w), int(at)) for p, v, w, at in rows]

    async def renew(self, held: dict[int, int], worker: str) -> set[int]:
        """Refresh the lease of each partition ``held`` maps to the version this worker
        saved last; the partitions whose version or holder moved are left out of the
        answer (another worker saved: this one lost them)."""
        if not held:
            return set()
        now = time.time_ns() // 1_000_000
        kept: set[int] = set()
        c = checkpoints.c
        async with self.engine.begin() as conn:
            for partition, version in held.items():
                done = await conn.execute(
                    checkpoints.update()
                    .where(c.partition == partition, c.version == version, c.worker == worker)
                    .values(lease_ms=now)
                )
                if done.rowcount == 1:
                    kept.add(partition)
        return kept
