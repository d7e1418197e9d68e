"""Reading alerts: filtered pages, one alert with its timeline and comments, and the open
alerts per device (the API's device list)."""

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from alerts.model import Alert, AlertDetail, AlertStatus
from alerts.schema import alert_events, alerts, comments
from alerts.store.base import NotFoundError, Page, StoreBase, check_paging
from alerts.store.rows import alert_of, change_of, comment_of
from alerts.store.sorting import ALERT_SORTS, Sort, order_by
from anomaly.events import DetectionKind, Severity


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Filters of :meth:`AlertStore.list_alerts`; ``None`` means any.

    ``wards`` restricts to a set of wards (a crew's); ``ward`` picks one. The time range
    applies to ``opened_at`` (``since`` inclusive, ``until`` exclusive).
    """

    state: AlertStatus | None = None
    severity: Severity | None = None
    ward: str | None = None
    wards: Sequence[str] | None = None
    device: str | None = None
    type: DetectionKind | None = None
    acknowledged: bool | None = None
    incident: int | None = None
    since: int | None = None
    until: int | None = None


@dataclass(frozen=True, slots=True)
class OpenAlerts:
    """Per device: how many alerts are open, and whether an ``offline`` alert is active."""

    counts: dict[str, int]
    offline: frozenset[str]


class AlertReads(StoreBase):
    """Alert queries."""

    async def list_alerts(
        self,
        where: AlertFilter | None = None,
        skip: int = 0,
        limit: int = 100,
        sort: Sequence[Sort] = (),
    ) -> Page[Alert]:
        """Newest first, or in the order of ``sort`` (fields of :data:`ALERT_SORTS`)."""
        check_paging(skip, limit)
        conditions = alert_conditions(where or AlertFilter())
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count()).select_from(alerts).where(*conditions)
            )
            rows = await conn.execute(
                sa.select(alerts)
                .where(*conditions)
                .order_by(*order_by(sort, ALERT_SORTS, alerts.c.id))
                .offset(skip)
                .limit(limit)
            )
            return Page([alert_of(r) for r in rows.mappings()], int(count or 0))

    async def get_alert(self, alert_id: int) -> AlertDetail:
        """One alert with its timeline (oldest first) and comments; :class:`NotFoundError`."""
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)))
                .mappings()
                .first()
            )
            if row is None:
                raise NotFoundError(f"no alert {alert_id}")
            alert = alert_of(row)
            events = await conn.execute(
                sa.select(alert_events)
                .where(alert_events.c.alert_id == alert_id)
                .order_by(alert_events.c.id)
            )
            notes = await conn.execute(
                sa.select(comments).where(comments.c.alert_id == alert_id).order_by(comments.c.id)
            )
            return AlertDetail(
                alert,
                [change_of(r) for r in events.mappings()],
                [comment_of(r) for r in notes.mappings()],
            )

    async def open_alerts_by_device(
        self, wards: Sequence[str] | None, device: str | None = None
    ) -> OpenAlerts:
        """Open alerts per device (area alerts, which name no device, are left out), in
        ``wards`` (``None``: all) or of one ``device``."""
        c = alerts.c
        conditions: list[sa.ColumnElement[bool]] = [c.open_key.is_not(None), c.device != ""]
        if wards is not None:
            conditions.append(c.ward.in_(list(wards)))
        if device is not None:
            conditions.append(c.device == device)
        async with self.engine.connect() as conn:
            counts = await conn.execute(
                sa.select(c.device, sa.func.count()).where(*conditions).group_by(c.device)
            )
            offline = await conn.scalars(
                sa.select(c.device)
                .where(
                    *conditions,
                    c.type == DetectionKind.OFFLINE.value,
                    c.state == AlertStatus.ACTIVE.value,
                )
                .distinct()
            )
            return OpenAlerts({str(d): int(n) for d, n in counts.all()}, frozenset(offline))


def alert_conditions(where: AlertFilter) -> list[sa.ColumnElement[bool]]:
    c = alerts.c
    conditions: list[sa.ColumnElement[bool]] = []
    if where.state is not None:
        conditions.append(c.state == AlertStatus(where.state).value)
    if where.severity is not None:
        conditions.append(c.severity == Severity(where.severity).value)
    if where.ward is not None:
        conditions.append(c.ward == where.ward)
    if where.wards is not None:
        conditions.append(c.ward.in_(list(where.wards)))
    if where.device is not None:
        conditions.append(c.device == where.device)
    if where.type is not None:
        conditions.append(c.type == DetectionKind(where.type).value)
    if where.acknowledged is not None:
        conditions.append(c.acknowledged.is_(where.acknowledged))
    if where.incident is not None:
        conditions.append(c.incident_id == where.incident)
    if where.since is not None:
        conditions.append(c.opened_at >= where.since)
    if where.until is not None:
        conditions.append(c.opened_at < where.until)
    return conditions


async def alerts_by_id(conn: AsyncConnection, ids: set[int]) -> dict[int, Alert]:
    if not ids:
        return {}
    rows = await conn.execute(sa.select(alerts).where(alerts.c.id.in_(sorted(ids))))
    return {r["id"]: alert_of(r) for r in rows.mappings()}
