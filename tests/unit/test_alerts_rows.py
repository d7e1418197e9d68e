"""The store's row mapping follows the records' declarations and covers the tables."""

import pytest

from alerts.model import (
    AlertKey,
    AlertState,
    AlertStatus,
    ApiKey,
    Incident,
    IncidentKind,
    Role,
    Silence,
)
from alerts.policy import Policy
from alerts.schema import alerts, api_keys, incidents, silences
from alerts.store.rows import alert_of, columns_of, incident_of, record_of, row_of, state_of
from anomaly.events import DetectionKind, Severity

pytestmark = pytest.mark.unit

STATE = AlertState(
    key=AlertKey(DetectionKind.LIMIT, "phuong_hoan_kiem", "cab_7", "temperature"),
    status=AlertStatus.ACTIVE,
    severity=Severity.MAJOR,
    opened_at=1_000,
    last_seen=5_000,
    started_at=900,
    raised_at=2_000,
    acknowledged=True,
    acknowledged_by="crew 7",
    acknowledged_at=3_000,
    count=4,
    peak_score=0.9,
    last_score=0.7,
    value=71.5,
    explanation="hot",
    flap_changes=(2_000, 2_500),
    last_notified_at=2_000,
    incident_id=12,
)


def test_an_alert_row_has_every_column_of_the_table() -> None:
    row = {"id": 3, **columns_of(STATE, Policy())}
    assert set(row) == set(alerts.c.keys())
    assert (row["state"], row["type"], row["device"]) == ("active", "limit", "cab_7")
    assert row["flap_changes"] == [2_000, 2_500]


def test_a_state_survives_its_row() -> None:
    assert state_of(columns_of(STATE, Policy())) == STATE


def test_the_served_alert_reads_its_columns() -> None:
    alert = alert_of({"id": 3, **columns_of(STATE, Policy())})
    assert (alert.id, alert.state, alert.incident) == (3, AlertStatus.ACTIVE, 12)
    assert (alert.type, alert.metric) == (DetectionKind.LIMIT, "temperature")


@pytest.mark.parametrize(
    ("record", "table", "not_stored"),
    [
        (Silence(1, 0, 10, "w", None, DetectionKind.OFFLINE, "works", "noc"), silences, set()),
        (ApiKey("k1", "crew 7", Role.CREW, ("w1", "w2"), 5), api_keys, set()),
        (
            Incident(2, IncidentKind.CABLE_CUT, "w", "r7", 3, 9, 0, None, "cut"),
            incidents,
            {"children"},
        ),
    ],
)
def test_records_round_trip_through_their_tables(
    record: object, table: object, not_stored: set[str]
) -> None:
    row = row_of(record)
    assert set(row) - {"children"} <= set(table.c.keys())  # type: ignore[attr-defined]
    given = {name: getattr(record, name) for name in not_stored}
    assert record_of(type(record), row, **given) == record


def test_an_incident_takes_its_children() -> None:
    row = row_of(Incident(2, IncidentKind.AREA_OUTAGE, "w", None, None, 9, 0, None, "outage"))
    assert row["root_alert_id"] == 9
    assert incident_of(row, [4, 5]).children == [4, 5]
