"""The change feed: the ``alert_events`` table read as one outbox, and its consumers'
durable cursors.

Timeline entries double as the change feed: their ids increase in commit order (the
lifecycle writers are serialised, :mod:`alerts.store.unit_of_work`), so a client that saw
id N misses nothing by asking for ``changes_since(N)``. Each consumer inside citywatch (the
InfluxDB export, each notifier) keeps a durable cursor here (:meth:`open_cursor`,
:meth:`advance_cursor`) and reads :meth:`feed_since`, whose changes carry the alert as
their own transaction left it: after a crash a consumer repeats the changes past its
cursor and sends exactly what it would have sent the first time. SSE clients keep their
own cursor (``Last-Event-ID``).
"""

from collections.abc import Sequence

import msgspec
import sqlalchemy as sa

from alerts.model import Alert, AlertChange, DeliveryAttempt
from alerts.schema import alert_events, feed_cursors
from alerts.store.base import StoreBase, check_paging, dialect_insert
from alerts.store.deliveries import log_deliveries
from alerts.store.queries import alerts_by_id
from alerts.store.rows import change_of


class ChangeFeedStore(StoreBase):
    """Reading the change feed; the feed consumers' cursors."""

    async def changes_since(
        self, after_id: int = 0, wards: Sequence[str] | None = None, limit: int = 500
    ) -> list[AlertChange]:
        """Transitions with id > ``after_id`` (oldest first), each with the alert as it is
        now; ``wards`` restricts to those wards."""
        check_paging(0, limit)
        query = sa.select(alert_events).where(alert_events.c.id > after_id)
        if wards is not None:
            query = query.where(alert_events.c.ward.in_(list(wards)))
        async with self.engine.connect() as conn:
            rows = list(
                (await conn.execute(query.order_by(alert_events.c.id).limit(limit))).mappings()
            )
            snapshots = await alerts_by_id(conn, {r["alert_id"] for r in rows})
        return [change_of(r, snapshots.get(r["alert_id"])) for r in rows]

    async def last_change_id(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.max(alert_events.c.id))) or 0)

    # ---------------------------------------------------------------- feed consumers

    async def feed_since(self, after_id: int = 0, limit: int = 500) -> list[AlertChange]:
        """Transitions with id > ``after_id`` (oldest first), each with the alert as its
        own transaction left it (stored with the change), so repeating a change sends the
        same thing. Changes stored before that snapshot existed (migration 0003) carry
        the alert as it is now."""
        check_paging(0, limit)
        query = (
            sa.select(alert_events)
            .where(alert_events.c.id > after_id)
            .order_by(alert_events.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = list((await conn.execute(query)).mappings())
            missing = {r["alert_id"] for r in rows if r["snapshot"] is None}
            current = await alerts_by_id(conn, missing)
        return [
            change_of(
                r,
                current.get(r["alert_id"])
                if r["snapshot"] is None
                else msgspec.convert(r["snapshot"], Alert),
            )
            for r in rows
        ]

    async def open_cursor(self, consumer: str) -> int:
        """Where ``consumer`` is in the change feed: every change up to the returned id
        is done. A consumer seen for the first time starts at the current head (stored at
        once): a new install, or a newly configured notifier, does not replay history."""
        where = feed_cursors.c.consumer == consumer
        async with self._begin_write() as conn:
            stored = await conn.scalar(sa.select(feed_cursors.c.change_id).where(where))
            if stored is None:
                head = await conn.scalar(sa.select(sa.func.max(alert_events.c.id)))
                await conn.execute(
                    dialect_insert(conn, feed_cursors)
                    .values(consumer=consumer, change_id=int(head or 0), updated_ms=self.clock())
                    .on_conflict_do_nothing(index_elements=["consumer"])
                )
                stored = await conn.scalar(sa.select(feed_cursors.c.change_id).where(where))
        return int(stored or 0)

    async def advance_cursor(
        self, consumer: str, change_id: int, attempts: Sequence[DeliveryAttempt] = ()
    ) -> None:
        """Move ``consumer``'s cursor to ``change_id`` (never back) and log ``attempts``,
        in one transaction: a crash leaves either both or neither."""
        now = self.clock()
        async with self._begin_write() as conn:
            await log_deliveries(conn, attempts, now)
            insert = dialect_insert(conn, feed_cursors).values(
                consumer=consumer, change_id=change_id, updated_ms=now
            )
            stored = feed_cursors.c.change_id
            await conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["consumer"],
                    set_={
                        "change_id": sa.case(
                            (insert.excluded.change_id > stored, insert.excluded.change_id),
                            else_=stored,
                        ),
                        "updated_ms": insert.excluded.updated_ms,
                    },
                )
            )

    async def cursors(self) -> dict[str, int]:
        """Every feed consumer's cursor."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(feed_cursors.c.consumer, feed_cursors.c.change_id))
            return {consumer: int(change_id) for consumer, change_id in rows}
