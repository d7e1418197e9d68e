"""The delivery log, in the spirit of Alertmanager's notification log: one row per
(change, channel, target), so a delivery repeated after a crash updates its row."""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from alerts.model import AlertChange, Delivery, DeliveryAttempt
from alerts.schema import deliveries
from alerts.store.base import Page, StoreBase, check_paging, dialect_insert
from alerts.store.rows import delivery_of


class DeliveryLog(StoreBase):
    """Logging and listing notification deliveries."""

    async def record_delivery(
        self,
        change: AlertChange,
        *,
        channel: str,
        target: str,
        delivered: bool,
        attempts: int,
        error: str = "",
        now_ms: int | None = None,
    ) -> Delivery:
        """Log one delivery; a repeat of (change, channel, target) updates its row, the
        attempts adding up."""
        attempt = DeliveryAttempt(change, channel, target, delivered, attempts, error)
        at_ms = self.clock() if now_ms is None else now_ms
        async with self._begin_write() as conn:
            await log_deliveries(conn, [attempt], at_ms)
            row = (
                (
                    await conn.execute(
                        sa.select(deliveries).where(
                            deliveries.c.change_id == change.id,
                            deliveries.c.channel == channel,
                            deliveries.c.target == target,
                        )
                    )
                )
                .mappings()
                .one()
            )
        return delivery_of(row)

    async def record_deliveries(self, attempts: Sequence[DeliveryAttempt]) -> None:
        """Log many deliveries in one transaction (a burst of alerts notifies many); as
        :meth:`record_delivery`, keyed by (change, channel, target)."""
        if not attempts:
            return
        at_ms = self.clock()
        async with self._begin_write() as conn:
            await log_deliveries(conn, attempts, at_ms)

    async def list_deliveries(
        self, *, alert_id: int | None = None, skip: int = 0, limit: int = 100
    ) -> Page[Delivery]:
        check_paging(skip, limit)
        conditions = [] if alert_id is None else [deliveries.c.alert_id == alert_id]
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count()).select_from(deliveries).where(*conditions)
            )
            rows = await conn.execute(
                sa.select(deliveries)
                .where(*conditions)
                .order_by(deliveries.c.id.desc())
                .offset(skip)
                .limit(limit)
            )
            return Page([delivery_of(r) for r in rows.mappings()], int(count or 0))


async def log_deliveries(
    conn: AsyncConnection, attempts: Sequence[DeliveryAttempt], at_ms: int
) -> None:
    """Upsert delivery rows keyed by (change, channel, target): the newest outcome, the
    attempts of every try added up (a redelivery after a crash logs once)."""
    merged: dict[tuple[int, str, str], dict[str, Any]] = {}
    for attempt in attempts:
        row = delivery_row(attempt, at_ms)
        key = (row["change_id"], row["channel"], row["target"])
        if key in merged:
            row["attempts"] += merged[key]["attempts"]
        merged[key] = row
    if not merged:
        return
    insert = dialect_insert(conn, deliveries)
    await conn.execute(
        insert.on_conflict_do_update(
            index_elements=["change_id", "channel", "target"],
            set_={
                "status": insert.excluded.status,
                "attempts": deliveries.c.attempts + insert.excluded.attempts,
                "error": insert.excluded.error,
                "at_ms": insert.excluded.at_ms,
            },
        ),
        list(merged.values()),
    )


def delivery_row(attempt: DeliveryAttempt, at_ms: int) -> dict[str, Any]:
    return {
        "change_id": attempt.change.id,
        "alert_id": attempt.change.alert_id,
        "channel": attempt.channel,
        "target": attempt.target,
        "status": "delivered" if attempt.delivered else "failed",
        "attempts": attempt.attempts,
        "error": attempt.error,
        "at_ms": at_ms,
    }
