"""Incidents: grouping the open alerts of one outage under a root alert, and reading them.

An area outage (a ward's mains) groups that ward's power-loss and offline alerts; a cable
cut groups the downstream segments' offline and signal alerts; a device down (offline or
without mains) groups that device's silent sensors and what follows from it — the
inhibition Alertmanager has: grouped alerts stay visible, with their incident and its
root alert, but are not notified. Grouping happens inside a
lifecycle write (:mod:`alerts.store.writes`), when an alert appears or changes status.
"""

from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from alerts import lifecycle
from alerts.correlation import (
    CUT_CHILD_TYPES,
    SIGNAL_METRICS,
    DeviceDirectory,
    IncidentScope,
    in_scope,
    scope_of,
)
from alerts.model import AlertState, AlertStatus, Change, Incident, IncidentKind
from alerts.schema import alerts, incidents
from alerts.store.base import NotFoundError, Page, StoreBase, check_paging
from alerts.store.rows import incident_of, scope_of_row, state_of
from alerts.store.sorting import INCIDENT_SORTS, Sort, order_by
from alerts.store.unit_of_work import Tx


class Settle(Protocol):
    """How a lifecycle write settles an alert it changed (:meth:`LifecycleWrites._settle`)."""

    async def __call__(
        self,
        tx: Tx,
        alert_id: int,
        state: AlertState,
        changes: list[Change],
        *,
        before: AlertState | None,
    ) -> None: ...


class IncidentReads(StoreBase):
    """Incident queries."""

    async def list_incidents(
        self,
        *,
        open_only: bool = False,
        ward: str | None = None,
        wards: Sequence[str] | None = None,
        skip: int = 0,
        limit: int = 100,
        sort: Sequence[Sort] = (),
    ) -> Page[Incident]:
        """Newest first (or in the order of ``sort``, fields of :data:`INCIDENT_SORTS`),
        each with the ids of its child alerts."""
        check_paging(skip, limit)
        conditions: list[sa.ColumnElement[bool]] = []
        if open_only:
            conditions.append(incidents.c.closed_at.is_(None))
        if ward is not None:
            conditions.append(incidents.c.ward == ward)
        if wards is not None:
            conditions.append(incidents.c.ward.in_(list(wards)))
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count()).select_from(incidents).where(*conditions)
            )
            rows = list(
                (
                    await conn.execute(
                        sa.select(incidents)
                        .where(*conditions)
                        .order_by(*order_by(sort, INCIDENT_SORTS, incidents.c.id))
                        .offset(skip)
                        .limit(limit)
                    )
                ).mappings()
            )
            children = await children_of(conn, [r["id"] for r in rows])
        return Page([incident_of(r, children.get(r["id"], [])) for r in rows], int(count or 0))

    async def get_incident(self, incident_id: int) -> Incident:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)))
                .mappings()
                .first()
            )
            if row is None:
                raise NotFoundError(f"no incident {incident_id}")
            children = await children_of(conn, [incident_id])
        return incident_of(row, children.get(incident_id, []))


async def correlate(
    tx: Tx, alert_id: int, state: AlertState, directory: DeviceDirectory, settle: Settle
) -> lifecycle.Result:
    """Join an open incident, open one as its root, or close the one it roots."""
    if state.incident_root and not state.is_open:
        await close_incident(tx, state, settle)
        return state, []
    if state.incident_id is not None or not state.is_open:
        return state, []
    for row in await tx.open_incidents():
        if row["root_alert_id"] != alert_id and in_scope(scope_of_row(row), state.key, directory):
            return lifecycle.join_incident(state, row["id"], False, tx.now)
    scope = scope_of(state.key, directory)
    if scope is None or state.status is not AlertStatus.ACTIVE:
        return state, []
    # A new incident: the rare path, which reads the alerts table, so write first.
    await tx.sync()
    tx.incidents_changed()
    incident_id = await tx.conn.scalar(
        sa.insert(incidents)
        .values(
            kind=scope.kind.value,
            ward=scope.ward,
            route=scope.route,
            position=scope.position,
            device=scope.root_device if scope.kind is IncidentKind.DEVICE_DOWN else None,
            root_alert_id=alert_id,
            opened_at=tx.now,
            title=scope.title,
        )
        .returning(incidents.c.id)
    )
    assert incident_id is not None
    state, changes = lifecycle.join_incident(state, int(incident_id), True, tx.now)
    candidates = await tx.conn.execute(
        sa.select(alerts)
        .where(
            alerts.c.open_key.is_not(None),
            alerts.c.incident_id.is_(None),
            alerts.c.id != alert_id,
            alerts.c.device != "",
            may_join(scope),
        )
        .order_by(alerts.c.id)
        .with_for_update()
    )
    for child_id, child in [(r["id"], state_of(r)) for r in candidates.mappings()]:
        if in_scope(scope, child.key, directory):
            grouped, child_changes = lifecycle.join_incident(child, int(incident_id), False, tx.now)
            await settle(tx, child_id, grouped, child_changes, before=child)
    if scope.kind is not IncidentKind.DEVICE_DOWN:
        await absorb_devices_down(tx, int(incident_id), scope, directory, settle)
    return state, changes


async def absorb_devices_down(
    tx: Tx, incident_id: int, scope: IncidentScope, directory: DeviceDirectory, settle: Settle
) -> None:
    """A wider cause (an area's mains, a cut upstream) takes over the device-down
    incidents of its devices: each closes, and its root and children join the new one,
    so a crew sees one card for the outage, not one per device."""
    for row in list(await tx.open_incidents()):
        if row["kind"] != IncidentKind.DEVICE_DOWN.value or row["id"] == incident_id:
            continue
        if scope.kind is IncidentKind.AREA_OUTAGE and row["ward"] != scope.ward:
            continue  # an area takes only its own ward's devices: no need to read them
        members = await tx.conn.execute(
            sa.select(alerts)
            .where(alerts.c.incident_id == row["id"], alerts.c.open_key.is_not(None))
            .order_by(alerts.c.incident_root.desc(), alerts.c.id)
            .with_for_update()
        )
        loaded = [(r["id"], state_of(r)) for r in members.mappings()]
        if not loaded or not loaded[0][1].incident_root:
            continue
        if not in_scope(scope, loaded[0][1].key, directory):
            continue
        tx.incidents_changed()
        await tx.conn.execute(
            sa.update(incidents).where(incidents.c.id == row["id"]).values(closed_at=tx.now)
        )
        for member_id, stored in loaded:
            member = tx.known.get(member_id, stored)  # this write's newer state, if any
            joined, member_changes = lifecycle.join_incident(member, incident_id, False, tx.now)
            await settle(tx, member_id, joined, member_changes, before=member)


async def close_incident(tx: Tx, root: AlertState, settle: Settle) -> None:
    assert root.incident_id is not None
    await tx.sync()
    tx.incidents_changed()
    result = await tx.conn.execute(
        sa.update(incidents)
        .where(incidents.c.id == root.incident_id, incidents.c.closed_at.is_(None))
        .values(closed_at=tx.now)
    )
    if result.rowcount == 0:
        return
    rows = await tx.conn.execute(
        sa.select(alerts)
        .where(
            alerts.c.incident_id == root.incident_id,
            alerts.c.incident_root.is_(False),
            alerts.c.open_key.is_not(None),
        )
        .order_by(alerts.c.id)
        .with_for_update()
    )
    for child_id, child in [(r["id"], state_of(r)) for r in rows.mappings()]:
        freed, changes = lifecycle.leave_incident(child, tx.now)
        await settle(tx, child_id, freed, changes, before=child)


def may_join(scope: IncidentScope) -> sa.ColumnElement[bool]:
    """A superset of :func:`in_scope` in SQL, so a new incident does not read every open
    alert of the city (in_scope still decides, with the device directory)."""
    if scope.kind is IncidentKind.AREA_OUTAGE:
        return alerts.c.ward == scope.ward
    if scope.kind is IncidentKind.DEVICE_DOWN:
        return alerts.c.device == scope.root_device
    return sa.or_(
        alerts.c.type.in_(sorted(t.value for t in CUT_CHILD_TYPES)),
        alerts.c.metric.in_(sorted(SIGNAL_METRICS)),
    )


async def children_of(conn: AsyncConnection, incident_ids: list[int]) -> dict[int, list[int]]:
    if not incident_ids:
        return {}
    rows = await conn.execute(
        sa.select(alerts.c.id, alerts.c.incident_id)
        .where(alerts.c.incident_id.in_(incident_ids), alerts.c.incident_root.is_(False))
        .order_by(alerts.c.id)
    )
    found: dict[int, list[int]] = {}
    for alert_id, incident_id in rows:
        found.setdefault(incident_id, []).append(alert_id)
    return found
