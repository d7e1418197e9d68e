"""Alert transitions written to a real influxd as line protocol, and read back intact."""

from dataclasses import replace

import httpx
import pytest

from alerts.influx import MEASUREMENT, alert_line, alert_lines
from alerts.model import Alert, AlertChange, AlertStatus, ChangeKind
from anomaly.events import DetectionKind, Severity
from telemetry.lineproto import stored_tag_value

ALERT = Alert(
    id=42,
    type=DetectionKind.FLOODING,
    ward="phuong_hoan_kiem",
    device="cab_0042",
    metric="",
    severity=Severity.CRITICAL,
    state=AlertStatus.ACTIVE,
    acknowledged=False,
    acknowledged_by=None,
    acknowledged_at=None,
    assignee=None,
    opened_at=1_700_000_000_000,
    raised_at=1_700_000_000_000,
    last_seen=1_700_000_000_000,
    cleared_at=None,
    started_at=1_700_000_000_000,
    count=1,
    peak_score=0.97,
    last_score=0.97,
    value=120.0,
    explanation='water 120 mm "above" the plinth',
    incident=None,
    incident_root=False,
    silenced=False,
    flapping=False,
    escalated_at=None,
)


def change(alert: Alert, change_id: int, kind: ChangeKind, at_ms: int) -> AlertChange:
    return AlertChange(change_id, alert.id, kind, at_ms, "", None, True, alert.ward, alert)


def query(influx_url: str, db: str, q: str) -> list[dict[str, object]]:
    response = httpx.get(f"{influx_url}/query", params={"db": db, "q": q, "epoch": "ms"})
    response.raise_for_status()
    series = response.json()["results"][0].get("series", [])
    return [dict(zip(s["columns"], row, strict=True)) for s in series for row in s["values"]]


def test_lines_round_trip_through_influxd_without_injection(influx) -> None:  # type: ignore[no-untyped-def]
    db = "citywatch_alerts_test"
    httpx.post(f"{influx.url}/query", params={"q": f"CREATE DATABASE {db}"}).raise_for_status()
    hostile = replace(
        ALERT,
        id=43,
        ward="evil ward,device=x",
        device="cab=1 value=9\\",
        explanation='line one\nfake_measurement value=1 "quoted" back\\slash\\',
    )
    t0 = 1_700_000_000_000
    area = replace(ALERT, id=44, device="", type=DetectionKind.AREA_OUTAGE)
    body = alert_lines(
        [
            change(ALERT, 1, ChangeKind.RAISED, t0),
            change(replace(ALERT, acknowledged=True), 2, ChangeKind.ACKNOWLEDGED, t0 + 1),
            change(hostile, 3, ChangeKind.RAISED, t0 + 2),
            change(area, 4, ChangeKind.RAISED, t0 + 3),
        ]
    )
    httpx.post(f"{influx.url}/write", params={"db": db}, content=body).raise_for_status()
    rows = query(influx.url, db, f'SELECT * FROM "{MEASUREMENT}" ORDER BY time')
    assert [r["alert_id"] for r in rows] == [42, 42, 43, 44]
    first, acked, evil, area_row = rows
    assert first["time"] == t0
    assert (first["ward"], first["device"], first["type"], first["severity"], first["state"]) == (
        "phuong_hoan_kiem",
        "cab_0042",
        "flooding",
        "critical",
        "active",
    )
    assert (first["transition"], first["score"], first["acknowledged"]) == ("raised", 0.97, False)
    assert first["explanation"] == 'water 120 mm "above" the plinth'
    assert (acked["transition"], acked["acknowledged"]) == ("acknowledged", True)
    # One escaper for ingest and alerts (telemetry.lineproto): values round-trip, a
    # trailing backslash is stored as its visible stand-in, a newline stays in the string.
    assert (evil["ward"], evil["device"]) == (
        "evil ward,device=x",
        stored_tag_value("cab=1 value=9\\"),
    )
    assert evil["explanation"] == hostile.explanation
    assert area_row["device"] is None
    assert query(influx.url, db, "SHOW MEASUREMENTS") == [{"name": MEASUREMENT}]


def test_a_change_without_its_alert_is_refused() -> None:
    bare = AlertChange(1, 1, ChangeKind.RAISED, 0, "", None, True, "w", None)
    with pytest.raises(ValueError, match="no alert snapshot"):
        alert_line(bare)


def test_changes_stay_one_point_each_and_a_repeat_writes_the_same_points(influx) -> None:  # type: ignore[no-untyped-def]
    """Two metrics of one device raised in one millisecond share every tag: each change
    is its own point (a nanosecond of its own); writing the changes again (a repeat after
    a crash) leaves one point per change."""
    db = "citywatch_alerts_repeat_test"
    httpx.post(f"{influx.url}/query", params={"q": f"CREATE DATABASE {db}"}).raise_for_status()
    t0 = 1_700_000_000_000
    humid = replace(ALERT, id=50, type=DetectionKind.LIMIT, metric="humidity")
    heat = replace(ALERT, id=51, type=DetectionKind.LIMIT, metric="temp_inside")
    changes = [
        change(humid, 1_000_001, ChangeKind.RAISED, t0),
        change(heat, 1_000_002, ChangeKind.RAISED, t0),
    ]
    for _ in range(2):
        body = alert_lines(changes)
        httpx.post(f"{influx.url}/write", params={"db": db}, content=body).raise_for_status()
    rows = query(influx.url, db, f'SELECT change_id, alert_id FROM "{MEASUREMENT}"')
    assert sorted((r["change_id"], r["alert_id"]) for r in rows) == [
        (1_000_001, 50),
        (1_000_002, 51),
    ]
    assert {r["time"] for r in rows} == {t0}  # still that millisecond to a reader in ms


def test_a_grouped_alert_says_which_incident_inhibits_it(influx) -> None:  # type: ignore[no-untyped-def]
    """Grouped under an incident, an alert's points carry the incident (Grafana's alerts
    table shows who inhibits it); an ungrouped alert's carry none."""
    db = "citywatch_alerts_incident"
    httpx.post(f"{influx.url}/query", params={"q": f"CREATE DATABASE {db}"}).raise_for_status()
    grouped = replace(ALERT, id=50, device="cab-9", incident=7, incident_root=False)
    alone = replace(ALERT, id=51, device="cab-8")
    lines = alert_lines(
        [
            change(grouped, 500, ChangeKind.GROUPED, 1_700_000_100_000),
            change(alone, 501, ChangeKind.RAISED, 1_700_000_100_000),
        ]
    )
    httpx.post(f"{influx.url}/write", params={"db": db}, content=lines).raise_for_status()
    rows = query(
        influx.url, db, 'SELECT "alert_id", "incident", "incident_root" FROM "citywatch_alert"'
    )
    by_alert = {r["alert_id"]: (r["incident"], r["incident_root"]) for r in rows}
    assert by_alert == {50: (7, False), 51: (None, False)}
