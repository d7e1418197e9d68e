"""The demo's scorecard: caught, missed, time to alert and false alarms from labels and
the API's alerts."""

from citywatch.scorecard import crew_cards, score
from simulators.labels import Label

MIN = 60_000


def label(device: str, fault: str, start: int, end: int, ward: str = "w1") -> Label:
    return Label(device, ward, "*", fault, start * MIN, end * MIN, "s")


def alert(
    device: str, raised: int | None, ward: str = "w1", kind: str = "overheating"
) -> dict[str, object]:
    return {
        "device": device,
        "ward": ward,
        "type": kind,
        "raised_at": None if raised is None else raised * MIN,
    }


def test_caught_missed_delay_and_false_alarms() -> None:
    labels = [
        label("cab-1", "fan_failure", 10, 40),
        label("cab-2", "flooding", 20, 50),  # caught by an area alert of its ward
        label("cab-3", "mains_outage", 30, 60),  # only a pending alert: missed
        label("cab-4", "stuck_sensor", 5, 50),  # the NOC's fault: not counted, not false
    ]
    alerts = [
        alert("cab-1", 13),
        alert("", 26, kind="area_outage"),
        alert("cab-3", None),
        alert("cab-4", 7, kind="flatline"),
        alert("cab-9", 20),  # no fault at all: a false alarm
        alert("", 30, ward="w2", kind="area_outage"),  # a ward without faults
    ]
    card = score(labels, alerts)
    assert (card.faults, card.caught) == (3, 2)
    assert card.missed == ["cab-3 (mains_outage)"]
    assert card.delays_s == [180.0, 360.0]
    assert card.median_delay_s == 270.0
    assert card.false_alarms == ["cab-9: overheating", "w2: area_outage"]
    assert card.lines()[0] == "faults injected 3, caught 2 (missed: cab-3 (mains_outage))"
    assert card.lines()[1] == "median time to alert 4.5 min (device time)"


def test_an_alert_long_after_the_fault_does_not_count() -> None:
    card = score([label("cab-1", "cable_cut", 0, 10)], [alert("cab-1", 10 + 31)])
    assert (card.faults, card.caught, card.median_delay_s) == (1, 0, None)
    assert card.lines()[1] == "median time to alert n/a"


def test_crew_cards_fold_incident_children() -> None:
    def a(device: str, **fields: object) -> dict[str, object]:
        base = {
            "device": device,
            "ward": "w1",
            "raised_at": 1,
            "state": "active",
            "severity": "major",
            "opened_at": 1,
        }
        return {**base, "incident": None, "incident_root": False, **fields}

    alerts = [
        a("cab-1", incident=7, incident_root=True),  # offline: the device's card
        a("cab-1", incident=7),  # its silent sensors: folded in
        a("cab-1", incident=7),
        a("cab-2"),
        a("cab-2", severity="critical"),  # a second problem of cab-2: folded into one card
        a("cab-2", state="cleared"),  # gone
        a("cab-3", raised_at=None),  # still pending
    ]
    cards = crew_cards(alerts)
    assert (cards.cards, cards.incidents, cards.max_per_device) == (2, 1, 1)
