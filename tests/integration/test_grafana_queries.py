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
