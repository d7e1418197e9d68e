"""Row mapping: the store's tables to and from the alert layer's value types."""

from typing import Any

import sqlalchemy as sa

from alerts import lifecycle
from alerts.correlation import IncidentScope
from alerts.model import (
    Alert,
    AlertChange,
    AlertKey,
    AlertState,
    AlertStatus,
    ApiKey,
    ChangeKind,
    Incident,
    IncidentKind,
    Role,
    Silence,
)
from alerts.policy import Policy
from anomaly.events import DetectionKind, Severity


def columns_of(state: AlertState, policy: Policy) -> dict[str, Any]:
    key = state.key
    return {
        "due_at": lifecycle.next_due(state, policy),
        "open_key": key.open_key if state.is_open else None,
        "dedup_key": key.open_key,
        "type": key.type.value,
        "ward": key.ward,
        "device": key.device,
        "metric": key.metric,
        "severity": state.severity.value,
        "state": state.status.value,
        "acknowledged": state.acknowledged,
        "acknowledged_by": state.acknowledged_by,
        "acknowledged_at": state.acknowledged_at,
        "assignee": state.assignee,
        "opened_at": state.opened_at,
        "raised_at": state.raised_at,
        "last_seen": state.last_seen,
        "cleared_at": state.cleared_at,
        "started_at": state.started_at,
        "clear_pending_since": state.clear_pending_since,
        "count": state.count,
        "peak_score": state.peak_score,
        "last_score": state.last_score,
        "value": state.value,
        "explanation": state.explanation,
        "silenced": state.silenced,
        "flapping": state.flapping,
        "flap_changes": list(state.flap_changes),
        "escalated_at": state.escalated_at,
        "last_notified_at": state.last_notified_at,
        "incident_id": state.incident_id,
        "incident_root": state.incident_root,
    }


def state_of(row: sa.RowMapping) -> AlertState:
    return AlertState(
        key=AlertKey(DetectionKind(row["type"]), row["ward"], row["device"], row["metric"]),
        status=AlertStatus(row["state"]),
        severity=Severity(row["severity"]),
        opened_at=row["opened_at"],
        last_seen=row["last_seen"],
        started_at=row["started_at"],
        raised_at=row["raised_at"],
        cleared_at=row["cleared_at"],
        clear_pending_since=row["clear_pending_since"],
        acknowledged=row["acknowledged"],
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=row["acknowledged_at"],
        assignee=row["assignee"],
        count=row["count"],
        peak_score=row["peak_score"],
        last_score=row["last_score"],
        value=row["value"],
        explanation=row["explanation"],
        silenced=row["silenced"],
        flapping=row["flapping"],
        flap_changes=tuple(row["flap_changes"]),
        escalated_at=row["escalated_at"],
        last_notified_at=row["last_notified_at"],
        incident_id=row["incident_id"],
        incident_root=row["incident_root"],
    )


def alert_of(row: sa.RowMapping) -> Alert:
    return Alert(
        id=row["id"],
        type=DetectionKind(row["type"]),
        ward=row["ward"],
        device=row["device"],
        metric=row["metric"],
        severity=Severity(row["severity"]),
        state=AlertStatus(row["state"]),
        acknowledged=row["acknowledged"],
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=row["acknowledged_at"],
        assignee=row["assignee"],
        opened_at=row["opened_at"],
        raised_at=row["raised_at"],
        last_seen=row["last_seen"],
        cleared_at=row["cleared_at"],
        started_at=row["started_at"],
        count=row["count"],
        peak_score=row["peak_score"],
        last_score=row["last_score"],
        value=row["value"],
        explanation=row["explanation"],
        incident=row["incident_id"],
        incident_root=row["incident_root"],
        silenced=row["silenced"],
        flapping=row["flapping"],
        escalated_at=row["escalated_at"],
    )


def change_of(row: sa.RowMapping, alert: Alert | None = None) -> AlertChange:
    return AlertChange(
        id=row["id"],
        alert_id=row["alert_id"],
        kind=ChangeKind(row["kind"]),
        at_ms=row["at_ms"],
        detail=row["detail"],
        actor=row["actor"],
        notify=row["notify"],
        ward=row["ward"],
        alert=alert,
    )


def silence_of(row: sa.RowMapping) -> Silence:
    return Silence(
        id=row["id"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        ward=row["ward"],
        device=row["device"],
        type=None if row["type"] is None else DetectionKind(row["type"]),
        comment=row["comment"],
        created_by=row["created_by"],
    )


def api_key_of(row: sa.RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        role=Role(row["role"]),
        wards=tuple(row["wards"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def scope_of_row(row: sa.RowMapping) -> IncidentScope:
    return IncidentScope(IncidentKind(row["kind"]), row["ward"], row["route"], row["position"], "")


def incident_of(row: sa.RowMapping, children: list[int]) -> Incident:
    return Incident(
        id=row["id"],
        kind=IncidentKind(row["kind"]),
        ward=row["ward"],
        route=row["route"],
        position=row["position"],
        root_alert=row["root_alert_id"],
        opened_at=row["opened_at"],
        closed_at=row["closed_at"],
        title=row["title"],
        children=children,
    )
