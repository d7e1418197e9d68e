"""The city end to end: a scenario with known faults runs time-compressed through the real
broker, ingest, InfluxDB, detector, alert store and API. Injected faults that should alert
produce the right alerts on the API and on the SSE stream; devices without faults stay
quiet; an area outage arrives as one incident."""

import json
from collections import defaultdict
from typing import Any

import httpx
from city_harness import City

# Which alert types answer each injected fault (the detector may name a fault by its cause
# or by the symptom the crew sees first).
EXPECTED: dict[str, set[str]] = {
    "fan_failure": {"overheating", "limit", "baseline", "time_of_day", "level_shift"},
    "mains_outage": {"power_loss", "area_outage", "offline", "limit"},
    "flooding": {"flooding", "limit", "baseline", "level_shift"},
    "cable_cut": {"cable_cut", "limit", "offline"},
    "fibre_degradation": {"fibre_degradation", "limit", "baseline", "level_shift"},
}


def all_alerts(city: City) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = []
    while True:
        page = city.get("/alerts", skip=len(alerts), limit=200)
        assert page.status_code == 200, page.text
        body = page.json()
        alerts += body["data"]
        if len(alerts) >= body["count"] or not body["data"]:
            return alerts


def raised(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts that reached a crew's attention (not discarded while pending)."""
    return [a for a in alerts if a.get("raised_at") is not None]


def test_the_run_published_the_whole_schedule(monsoon_city: City) -> None:
    assert monsoon_city.summary.failed == 0
    # two simulated hours at one report a minute, no device of this run dies
    assert monsoon_city.summary.by_channel["telemetry"] == 600 * 120


def test_faulted_devices_get_the_right_alerts(monsoon_city: City) -> None:
    alerts = raised(all_alerts(monsoon_city))
    by_device: dict[str, set[str]] = defaultdict(set)
    for alert in alerts:
        by_device[alert["device"]].add(alert["type"])
    faults: dict[str, set[str]] = defaultdict(set)
    for label in monsoon_city.labels:
        if label.fault in EXPECTED:
            faults[label.device].add(label.fault)
    assert faults, "the scenario injected nothing that should alert"
    hit = {d for d, kinds in faults.items() if any(by_device[d] & EXPECTED[k] for k in kinds)}
    missed = {d: sorted(faults[d]) for d in faults if d not in hit}
    assert len(hit) >= 0.9 * len(faults), f"missed {missed} of {len(faults)} faulted devices"


def test_devices_without_faults_stay_quiet(monsoon_city: City) -> None:
    faulted = {label.device for label in monsoon_city.labels}
    alerts = [a for a in raised(all_alerts(monsoon_city)) if a["device"]]
    false_alarms = {a["device"] for a in alerts} - faulted
    what = sorted(
        f"{a['device']} {a['type']} {a['metric']}: {a['explanation']}"
        for a in alerts
        if a["device"] in false_alarms
    )
    assert len(false_alarms) <= 0.02 * len(monsoon_city.devices), what


def test_area_outage_is_one_incident(monsoon_city: City) -> None:
    area = [a for a in all_alerts(monsoon_city) if a["type"] == "area_outage"]
    wards = {a["ward"] for a in area}
    assert wards == {"phuong_dinh_cong"}
    assert len(area) == 1
    incident = monsoon_city.get(f"/incidents/{area[0]['incident']}")
    assert incident.status_code == 200, incident.text
    children = incident.json()["children"]
    assert len(children) >= 1


def test_alerts_reach_the_sse_stream(monsoon_city: City) -> None:
    ids = {a["id"] for a in raised(all_alerts(monsoon_city))}
    seen: set[int] = set()
    headers = {"Authorization": f"Bearer {monsoon_city.noc_key}", "Last-Event-ID": "0"}
    with httpx.stream(
        "GET", f"{monsoon_city.api}/alerts/stream", headers=headers, timeout=30
    ) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if line.startswith("data:"):
                data = json.loads(line[5:])
                if "alert_id" in data:
                    seen.add(data["alert_id"])
            if ids <= seen:
                break
    assert ids <= seen


SEVERITY = {
    "cable_cut": {"critical"},
    "area_outage": {"critical"},
    "flooding": {"major", "critical"},
    "power_loss": {"major", "critical"},
    "overheating": {"major", "critical"},
    "fibre_degradation": {"minor", "major"},
}


def test_rule_alerts_carry_the_severity_a_crew_expects(monsoon_city: City) -> None:
    alerts = [a for a in raised(all_alerts(monsoon_city)) if a["type"] in SEVERITY]
    assert {a["type"] for a in alerts} >= {"cable_cut", "flooding", "area_outage"}
    for alert in alerts:
        assert alert["severity"] in SEVERITY[alert["type"]], alert
        assert alert["explanation"], alert
