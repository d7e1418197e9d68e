"""Which workers are alive, and each one's fair share of the partitions.

RabbitMQ 3.10's single active consumer fails a queue over to a waiting consumer when the
active one goes, but never hands a queue back: a worker that starts (or comes back)
beside a running one stays idle. The workers balance themselves instead: each one beats
in the shared database every tick (table ``cw_workers``), counts the workers that beat
within the lease time, and a worker that holds more than ``ceil(partitions / workers)``
hands the excess over, one partition a tick (:meth:`citywatch.worker.Partition.release`).
The broker itself cannot tell: a quorum queue's ``consumer_count`` counts only its active
consumer, not the ones waiting.

The table is cluster bookkeeping like ``cw_partition_checkpoints`` (created idempotently
by the worker, outside the alert schema); a worker that stops cleanly leaves it at once,
one killed drops out after the lease time.
"""

import math

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from citywatch.checkpoints import create_tables

metadata = sa.MetaData()
workers = sa.Table(
    "cw_workers",
    metadata,
    sa.Column("worker", sa.String(200), primary_key=True),
    sa.Column("seen_ms", sa.BigInteger, nullable=False),
    sa.Column("held", sa.Integer, nullable=False),
)


def fair_share(partitions: int, live_workers: int) -> int:
    """The most partitions one worker should hold: ``ceil(partitions / workers)``, so
    that with the shares rounded up nobody is left waiting while another holds two
    more than it (8 over 3 workers: 3, 3, 2)."""
    return math.ceil(partitions / max(live_workers, 1))


class Membership:
    """``await Membership.open(engine)``; ``beat`` every tick, ``leave`` on a clean stop."""

    def __init__(self, engine: AsyncEngine, lease_ms: int) -> None:
        self.engine = engine
        self.lease_ms = lease_ms

    @classmethod
    async def open(cls, engine: AsyncEngine, lease_ms: int) -> "Membership":
        await create_tables(engine, metadata.create_all)
        return cls(engine, lease_ms)

    async def beat(self, worker: str, held: int, now_ms: int) -> int:
        """Say ``worker`` is alive and holds ``held`` partitions; the number of workers
        alive (this one included)."""
        async with self.engine.begin() as conn:
            done = await conn.execute(
                workers.update().where(workers.c.worker == worker).values(seen_ms=now_ms, held=held)
            )
            if done.rowcount == 0:  # its first beat (one ticker a worker: no race)
                await conn.execute(
                    workers.insert().values(worker=worker, seen_ms=now_ms, held=held)
                )
            alive = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(workers)
                .where(workers.c.seen_ms > now_ms - self.lease_ms)
            )
        return max(int(alive or 0), 1)

    async def leave(self, worker: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(workers.delete().where(workers.c.worker == worker))

    async def alive(self, now_ms: int) -> dict[str, int]:
        """The workers alive and how many partitions each said it holds."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(workers.c.worker, workers.c.held).where(
                    workers.c.seen_ms > now_ms - self.lease_ms
                )
            )
        return {str(w): int(h) for w, h in rows}
