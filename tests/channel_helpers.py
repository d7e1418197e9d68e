"""Alert changes made by hand, for the routing and channel tests."""

from alerts.model import Alert, AlertChange, AlertStatus, ChangeKind
from anomaly.events import DetectionKind, Severity

ENV = {
    "CW_TG_TOKEN": "123456:test-token",
    "CW_ZALO_TOKEN": "zalo-oa-test-token",
    "CW_SMTP_PASSWORD": "smtp-test-password",
}


def change(
    id: int,
    *,
    kind: ChangeKind = ChangeKind.RAISED,
    ward: str = "phuong_hoang_mai",
    severity: Severity = Severity.MAJOR,
    type: DetectionKind = DetectionKind.FLOODING,
    device: str = "cab_1",
    alert_id: int | None = None,
    at_ms: int = 1_750_000_000_000,
    explanation: str = "water 120 mm above the plinth",
) -> AlertChange:
    alert_id = id if alert_id is None else alert_id
    alert = Alert(
        id=alert_id,
        type=type,
        ward=ward,
        device=device,
        metric="",
        severity=severity,
        state=AlertStatus.ACTIVE,
        acknowledged=False,
        acknowledged_by=None,
        acknowledged_at=None,
        assignee=None,
        opened_at=at_ms,
        raised_at=at_ms,
        last_seen=at_ms,
        cleared_at=None,
        started_at=at_ms,
        count=1,
        peak_score=0.9,
        last_score=0.9,
        value=None,
        explanation=explanation,
        incident=None,
        incident_root=False,
        silenced=False,
        flapping=False,
        escalated_at=None,
    )
    return AlertChange(
        id=id,
        alert_id=alert_id,
        kind=kind,
        at_ms=at_ms,
        detail="",
        actor=None,
        notify=True,
        ward=ward,
        alert=alert,
    )
