"""Per-partition detector checkpoints in the shared database, with a version fence.

One row per partition: the detector's checkpoint bytes (:meth:`anomaly.Detector.to_bytes`)
and a version that every save increments. A worker saves with ``version = what it
loaded``: a worker that has lost its partition (another one took over and saved since)
finds the fence moved and must reload instead of overwriting newer baselines.

The table is the worker's own (``cw_partition_checkpoints``), created idempotently when
the worker starts, in the same PostgreSQL as the alert store but not part of the alert
schema: it is cluster bookkeeping with one reader and writer (``citywatch worker``), the
alert store's migrations stay with the alert layer (which others change in parallel),
and dropping the table only costs the baselines (every series re-learns them).
"""

import time
from dataclasses import dataclass

import sqlalchemy as sa
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
)


@dataclass(frozen=True)
class Checkpoint:
    partition: int
    partitions: int
    version: int
    state: bytes
    """:meth:`anomaly.Detector.to_bytes`"""
    devices: bytes
    """:meth:`ingest.registry.DeviceRegistry.to_bytes`: the partition's devices' metadata,
    which decides the tags of their points (a cable segment's route)."""
    saved_ms: int
    worker: str


class CheckpointStore:
    """``await CheckpointStore.open(url)``; the store URL of the alert store works."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    async def open(cls, url: str) -> "CheckpointStore":
        engine = make_engine(url)
        for attempt in range(5):  # two workers creating the table at once: one wins
            try:
                async with engine.begin() as conn:
                    await conn.run_sync(metadata.create_all, checkfirst=True)
                break
            except DBAPIError:
                if attempt == 4:
                    raise
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
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(checkpoints).where(checkpoints.c.partition == partition)
                )
            ).first()
        return None if row is None else Checkpoint(*row)

    async def save(
        self,
        partition: int,
        partitions: int,
        expected: int,
        state: bytes,
        devices: bytes,
        worker: str,
    ) -> bool:
        """Store ``state`` as version ``expected + 1`` if the saved one is still
        ``expected``; False if another worker saved meanwhile (the fence)."""
        now = time.time_ns() // 1_000_000
        values = {
            "partitions": partitions,
            "version": expected + 1,
            "state": state,
            "devices": devices,
            "saved_ms": now,
            "worker": worker,
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
                return True
            done = await conn.execute(
                checkpoints.update()
                .where(checkpoints.c.partition == partition, checkpoints.c.version == expected)
                .values(**values)
            )
            return done.rowcount == 1

    async def all(self) -> list[Checkpoint]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(checkpoints).order_by(checkpoints.c.partition))
        return [Checkpoint(*row) for row in rows]
