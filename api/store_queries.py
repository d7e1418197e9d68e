"""Read-only queries the API needs beyond :class:`alerts.store.AlertStore`'s methods.

Written over the store's engine and tables (``alerts.schema``) rather than added to the
store, so the alert layer's interface stays what its owner designed.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from alerts.model import AlertStatus
from alerts.model import AlertType as DetectionKind
from alerts.schema import alerts
from alerts.store import AlertStore


@dataclass(frozen=True, slots=True)
class OpenAlerts:
    """Per device: how many alerts are open, and whether an ``offline`` alert is active."""

    counts: dict[str, int]
    offline: frozenset[str]


async def open_alerts_by_device(
    store: AlertStore, wards: Sequence[str] | None, device: str | None = None
) -> OpenAlerts:
    c = alerts.c
    conditions: list[sa.ColumnElement[bool]] = [c.open_key.is_not(None), c.device != ""]
    if wards is not None:
        conditions.append(c.ward.in_(list(wards)))
    if device is not None:
        conditions.append(c.device == device)
    async with store.engine.connect() as conn:
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
