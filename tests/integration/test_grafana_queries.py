"""Every query of every Grafana board — panels, template variables, annotations — runs
against a real influxd holding a simulated city's data (the monsoon scenario through the
real pipeline), with Grafana's macro substitution, and returns data."""

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from city_harness import City

BOARDS = sorted((Path(__file__).parents[2] / "grafana" / "dashboards").glob("*.json"))


def substitute(query: str, city: City, values: dict[str, str]) -> str:
    """What Grafana sends for ``query``: time filter, intervals, template variables."""
    # From the simulated run's device time to now: the platform's own metrics are stamped
    # with wall time, which follows the (pinned, earlier) device time of the run.
    until_ms = max(city.end_ms, time.time_ns() // 1_000_000) + 600_000
    time_filter = f"time >= {city.start_ms - 300_000}ms and time <= {until_ms}ms"
    text = query.replace("$timeFilter", time_filter)
    # Grafana's auto interval for a 2-3 h range on a board-wide panel.
    text = text.replace("$__interval", "10s").replace("$interval", "10s")
    for name, value in values.items():
        text = text.replace(f"${name}", value)
    assert not re.search(r"\$[A-Za-z_]", text), f"unsubstituted macro in {text}"
    return text


def run(city: City, query: str) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{city.influx}/query", data={"db": city.database, "q": query, "epoch": "ms"}, timeout=30
    )
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert "error" not in result, f"{query}: {result['error']}"
    return list(result.get("series", []))


@pytest.fixture(scope="module")
def city(monsoon_city: City) -> City:
    """The city, with one alert acknowledged and resolved by a person (for the
    time-to-acknowledge and time-to-resolve panels)."""
    alerts = monsoon_city.get("/alerts", state="active", limit=1).json()["data"]
    assert alerts, "the scenario raised no alert"
    headers = {"Authorization": f"Bearer {monsoon_city.noc_key}"}
    alert_id = alerts[0]["id"]
    for action in ("acknowledge", "resolve"):
        response = httpx.post(
            f"{monsoon_city.api}/alerts/{alert_id}/{action}", headers=headers, json={}, timeout=30
        )
        assert response.status_code == 200, response.text
    # Only people acknowledge (cleared alerts already carry resolve_after_s).
    check = 'SELECT count("ack_after_s") FROM "citywatch_alert"'
    deadline = time.monotonic() + 20
    while not run(monsoon_city, check) and time.monotonic() < deadline:
        time.sleep(0.2)  # the pipeline copies alert transitions to InfluxDB within a second
    return monsoon_city


def queries() -> list[tuple[str, str, str, bool]]:
    """(board, what, query, whether an empty answer is shown as a value: ``noValue``)."""
    found = []
    for path in BOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            no_value = "noValue" in panel["fieldConfig"]["defaults"]
            for target in panel["targets"]:
                found.append((path.name, f"panel {panel['title']!r}", target["query"], no_value))
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue  # the ward variable lists the catalogue (tests/unit)
            found.append((path.name, f"variable {variable['name']}", variable["query"], False))
        for annotation in board["annotations"]["list"]:
            found.append(
                (path.name, f"annotation {annotation['name']}", annotation["query"], False)
            )
    return found


@pytest.mark.parametrize(("board", "what", "query", "no_value"), queries())
def test_query_succeeds_and_returns_data_for_all_wards(
    city: City, board: str, what: str, query: str, no_value: bool
) -> None:
    text = substitute(query, city, {"ward": ".*", "device": ".*", "route": ".*"})
    series = run(city, text)
    # A stat that shows a value when its query is empty (``noValue``: a count of zero)
    # may be empty; everything else must find data.
    assert series or no_value, f"{board} {what}: no data from {text}"


def test_variables_narrow_the_cabinet_board_to_one_device(city: City) -> None:
    board = json.loads((BOARDS[0].parent / "cabinet-detail.json").read_text())
    wards = [
        v[1]
        for s in run(city, 'SHOW TAG VALUES FROM "cabinet" WITH KEY = "ward"')
        for v in s["values"]
    ]
    ward = re.escape(wards[0])
    devices = run(city, substitute(board["templating"]["list"][1]["query"], city, {"ward": ward}))
    device = devices[0]["values"][0][1]
    for panel in board["panels"]:
        for target in panel["targets"]:
            if "citywatch_score" in target["query"]:
                continue  # a healthy cabinet may have no flagged score
            series = run(city, substitute(target["query"], city, {"ward": ward, "device": device}))
            assert series, f"panel {panel['title']!r} has no data for {device}"
            assert {s["tags"]["device"] for s in series if "tags" in s} <= {device}


# --- Worst open alert per device (the maps' colours) ------------------------------------

LEVELS = {"warning": 1, "minor": 2, "major": 3, "critical": 4, "offline": 5}


def board(name: str) -> dict[str, Any]:
    return dict(json.loads((BOARDS[0].parent / name).read_text(encoding="utf-8")))


def map_queries(name: str = "city-overview.json") -> tuple[str, str]:
    """(positions, worst alerts): the two queries the map joins on ``device``."""
    (geomap,) = [p for p in board(name)["panels"] if p["type"] == "geomap"]
    by_ref = {t["refId"]: t["query"] for t in geomap["targets"]}
    return by_ref["A"], by_ref["B"]


def span_query(name: str = "city-overview.json") -> str:
    """The cable spans the map joins on ``device`` and draws as lines."""
    (geomap,) = [p for p in board(name)["panels"] if p["type"] == "geomap"]
    return str({t["refId"]: t["query"] for t in geomap["targets"]}["C"])


def joined(*frames: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Grafana's outer join of the map's frames on ``device``, one row per device."""
    rows_by_device: dict[str, dict[str, Any]] = {}
    for frame in frames:
        for row in frame:
            rows_by_device.setdefault(row["device"], {}).update(
                {k: v for k, v in row.items() if k != "time"}
            )
    return rows_by_device


def rows(city: City, query: str, database: str | None = None) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{city.influx}/query",
        data={"db": database or city.database, "q": query, "epoch": "ms"},
        timeout=30,
    )
    result = response.json()["results"][0]
    assert "error" not in result, result
    return [
        dict(zip(series["columns"], values, strict=True))
        for series in result.get("series", [])
        for values in series["values"]
    ]


# (device, type, severity, state, transition, alert id): transitions as alerts.influx
# writes them, in time order, one per minute.
TRANSITIONS = [
    # raised minor, escalated to major, still open: major
    ("cab-a", "limit", "minor", "active", "raised", 1),
    ("cab-a", "limit", "major", "active", "severity_raised", 1),
    # a critical alert of the same device, raised then cleared: no longer counts
    ("cab-a", "overheating", "critical", "active", "raised", 2),
    ("cab-a", "overheating", "critical", "cleared", "cleared", 2),
    # two open alerts of one type (two metrics): the worse one counts, whichever came last
    ("cab-b", "baseline", "critical", "active", "raised", 3),
    ("cab-b", "baseline", "warning", "active", "raised", 4),
    ("cab-b", "baseline", "warning", "active", "acknowledged", 4),
    # pending then discarded: never raised
    ("cab-c", "flatline", "major", "pending", "pending", 5),
    ("cab-c", "flatline", "major", "cleared", "discarded", 5),
    # resolved by hand
    ("cab-d", "flooding", "critical", "active", "raised", 6),
    ("cab-d", "flooding", "critical", "cleared", "resolved", 6),
    # open minor, then gone offline: offline has its own colour, above critical
    ("seg-e", "fibre_degradation", "critical", "active", "raised", 7),
    ("seg-e", "offline", "major", "active", "raised", 8),
    # offline, and back
    ("cab-f", "offline", "major", "active", "raised", 9),
    ("cab-f", "offline", "major", "cleared", "cleared", 9),
    ("cab-f", "dropout", "warning", "active", "raised", 10),
]
EXPECTED = {"cab-a": 3, "cab-b": 4, "seg-e": 5, "cab-f": 1}


@pytest.fixture(scope="module")
def seeded(city: City) -> str:
    """A database holding the transitions above (ward ``phuong_dinh_cong``), plus one open
    critical alert in another ward, and a position for every device."""
    database = "worst_alerts"
    httpx.post(f"{city.influx}/query", data={"q": f"CREATE DATABASE {database}"}).raise_for_status()
    now_ns = time.time_ns() - 3_600_000_000_000
    lines = []
    for i, (device, kind, severity, state, transition, alert_id) in enumerate(TRANSITIONS):
        lines.append(
            f"citywatch_alert,ward=phuong_dinh_cong,device={device},type={kind},"
            f"severity={severity},state={state},transition={transition} "
            f'alert_id={alert_id}i,explanation="x",change_id={i + 1}i {now_ns + i * 60 * 10**9}'
        )
    lines.append(  # seg-e's span: from seg-x, the segment before it on route r-9
        'cable_span,ward=phuong_dinh_cong,route=r-9,device=seg-e upstream="seg-x",'
        f"up_lat=20.99,up_lon=105.84,lat=20.985,lon=105.83,position=1i {now_ns}"
    )
    lines.append(
        "citywatch_alert,ward=phuong_hoan_kiem,device=cab-z,type=limit,severity=critical,"
        f'state=active,transition=raised alert_id=99i,explanation="x",change_id=99i {now_ns}'
    )
    for j, device in enumerate(["cab-a", "cab-b", "cab-c", "cab-d", "seg-e", "cab-f", "cab-g"]):
        kind = "cable_segment" if device.startswith("seg") else "cabinet"
        lines.append(
            f"device_status,ward=phuong_dinh_cong,device={device},kind={kind} online=true,"
            f'reason="status",street="Phố Định Công",lat={20.98 + j / 1000},lon=105.83 {now_ns}'
        )
    response = httpx.post(f"{city.influx}/write", params={"db": database}, content="\n".join(lines))
    assert response.status_code == 204, response.text
    return database


def test_the_map_colours_each_device_by_its_worst_open_alert(city: City, seeded: str) -> None:
    _, worst = map_queries()
    found = rows(city, substitute(worst, city, {"ward": "phuong_dinh_cong"}), seeded)
    assert {r["device"]: r["level"] for r in found} == EXPECTED
    everywhere = rows(city, substitute(worst, city, {"ward": ".*"}), seeded)
    assert {r["device"]: r["level"] for r in everywhere} == {**EXPECTED, "cab-z": 4}


def test_the_ward_board_shows_the_same_levels(city: City, seeded: str) -> None:
    positions, worst = map_queries("ward.json")
    found = rows(city, substitute(worst, city, {"ward": "phuong_dinh_cong"}), seeded)
    assert {r["device"]: r["level"] for r in found} == EXPECTED
    placed = rows(city, substitute(positions, city, {"ward": "phuong_dinh_cong"}), seeded)
    assert {r["device"] for r in placed} >= set(EXPECTED)  # the join finds every position


def test_wards_table_counts_devices_with_open_alerts(city: City, seeded: str) -> None:
    (table,) = [p for p in board("city-overview.json")["panels"] if p["title"].startswith("Wards")]
    found = rows(city, substitute(table["targets"][0]["query"], city, {"ward": ".*"}), seeded)
    assert {r["worst"] for r in found} == {5, 4}
    assert sorted(r["devices with open alerts"] for r in found) == [1, 4]


def test_the_city_map_places_every_device_with_an_open_alert(city: City) -> None:
    positions, worst = map_queries()
    placed = {r["device"]: r for r in rows(city, substitute(positions, city, {"ward": ".*"}))}
    levels = {r["device"]: r["level"] for r in rows(city, substitute(worst, city, {"ward": ".*"}))}
    assert levels, "the monsoon scenario left no open alert"
    assert set(levels.values()) <= set(LEVELS.values())
    assert set(levels) - {None, ""} <= set(placed)
    assert {r["kind"] for r in placed.values()} == {"cabinet", "cable_segment"}
    segments = [r for r in placed.values() if r["kind"] == "cable_segment"]
    assert all(r["route"] and r["position"] is not None for r in segments)


def test_a_span_takes_the_colour_of_the_segment_it_leads_to(city: City, seeded: str) -> None:
    positions, worst = map_queries()
    values = {"ward": "phuong_dinh_cong"}
    frames = [rows(city, substitute(q, city, values), seeded) for q in (positions, worst)]
    spans = rows(city, substitute(span_query(), city, values), seeded)
    assert [(s["device"], s["upstream"]) for s in spans] == [("seg-e", "seg-x")]
    row = joined(*frames, spans)["seg-e"]
    # the line from (up_lat, up_lon) to (lat, lon), in the offline colour (level 5)
    assert (row["up_lat"], row["up_lon"], row["lat"], row["level"]) == (20.99, 105.84, 20.984, 5)


def test_the_city_map_draws_every_route_as_one_unbroken_line(city: City) -> None:
    """Ingest wrote a span for every segment after the first of its route: joined to the
    positions as Grafana joins them, the spans chain each route's segments in order, from
    the exchange to its last segment, and each span's ends are the two segments' places."""
    positions, _ = map_queries()
    placed = [r for r in rows(city, substitute(positions, city, {"ward": ".*"})) if r["route"]]
    spans = rows(city, substitute(span_query(), city, {"ward": ".*"}))
    assert spans, "ingest wrote no cable span"
    at = {(r["route"], r["position"]): r for r in placed}
    by_device = {r["device"]: r for r in placed}
    lines = joined(placed, spans)
    routes = {r["route"] for r in placed}
    drawn = 0
    for (route, position), segment in at.items():
        row = lines[segment["device"]]
        if position == 0:
            assert row.get("upstream") is None, row  # the exchange end
            continue
        before = at[(route, position - 1)]  # the simulated routes have no gaps
        assert row["upstream"] == before["device"], (route, position)
        assert (row["up_lat"], row["up_lon"]) == (before["lat"], before["lon"])
        assert (row["lat"], row["lon"]) == (segment["lat"], segment["lon"])
        drawn += 1
    assert drawn == len(placed) - len(routes) > 0
    assert set(by_device) >= {s["device"] for s in spans}


def test_every_ward_in_the_data_is_in_the_ward_variable(city: City) -> None:
    (ward,) = [v for v in board("city-overview.json")["templating"]["list"] if v["name"] == "ward"]
    offered = {o["value"] for o in ward["options"]}
    in_data = {
        v[1]
        for measurement in ("device_status", "citywatch_alert")
        for s in run(city, f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "ward"')
        for v in s["values"]
    }
    assert in_data
    assert in_data <= offered
