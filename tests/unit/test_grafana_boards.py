"""Grafana provisioning, checked statically: boards equal their generator's output, uids
are stable and unique, every datasource reference resolves, and every measurement, tag
and field a query names exists in the storage schema. (The queries themselves run
against a real influxd in tests/integration/test_grafana_queries.py.)"""

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from telemetry.storage import SCHEMA

GRAFANA = Path(__file__).parents[2] / "grafana"


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_build", GRAFANA / "build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def boards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((GRAFANA / "dashboards").glob("*.json"))
    }


def queries(board: dict[str, Any]) -> list[str]:
    found = [t["query"] for p in board["panels"] for t in p["targets"]]
    found += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    found += [a["query"] for a in board["annotations"]["list"]]
    return found


def test_committed_boards_equal_the_generator_output() -> None:
    rendered = load_builder().render()
    committed = {
        p.name: p.read_text(encoding="utf-8") for p in (GRAFANA / "dashboards").glob("*.json")
    }
    assert committed == rendered, "run .venv/bin/python grafana/build.py and commit the result"


def test_the_six_boards_exist_with_stable_unique_uids() -> None:
    uids = {name: board["uid"] for name, board in boards().items()}
    assert uids == {
        "alerts.json": "cw-alerts",
        "cabinet-detail.json": "cw-cabinet",
        "cable-routes.json": "cw-cables",
        "city-overview.json": "cw-city",
        "pipeline-health.json": "cw-pipeline",
        "ward.json": "cw-ward",
    }


def test_every_datasource_reference_resolves_to_the_provisioned_one() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/influxdb.yaml").read_text())
    sources = {d["uid"]: d for d in provisioned["datasources"]}
    assert sources["citywatch-influxdb"]["type"] == "influxdb"
    refs: list[dict[str, str]] = []
    for board in boards().values():
        for p in board["panels"]:
            refs.append(p["datasource"])
            refs.extend(t["datasource"] for t in p["targets"])
        refs.extend(v["datasource"] for v in board["templating"]["list"] if v["type"] == "query")
        refs.extend(a["datasource"] for a in board["annotations"]["list"])
    assert refs
    for ref in refs:
        assert ref["uid"] in sources
        assert ref["type"] == sources[ref["uid"]]["type"]


def test_dashboard_provider_points_where_compose_mounts_the_boards() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/citywatch.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.mark.parametrize(
    ("name", "query"),
    [(name, q) for name, board in boards().items() for q in queries(board)],
)
def test_queries_name_only_schema_measurements_tags_and_fields(name: str, query: str) -> None:
    measurements = re.findall(r'FROM "([^"]+)"', query)
    assert measurements, f"{name}: no measurement in {query}"
    for m in measurements:
        assert m in SCHEMA, f"{name}: unknown measurement {m}"
    known = set(measurements)
    for m in measurements:
        known |= SCHEMA[m].tags | SCHEMA[m].fields
    aliases = set(re.findall(r'AS "([^"]+)"', query))
    named = set(re.findall(r'"([^"]+)"', query)) - aliases
    unknown = named - known
    assert not unknown, f"{name}: {sorted(unknown)} not in the schema of {measurements}"
    # Bounded: the board's time range, a fixed look-back (open alerts), or last values.
    assert (
        "$timeFilter" in query
        or query.startswith("SHOW")
        or "last(" in query
        or "time > now() - " in query
    )


# --- Ward names, maps, links and annotations (issue 14, sections 2 and 5) ----------------

BY_UID = {board["uid"]: board for board in boards().values()}
FIELD_REF = re.compile(r"\$\{__data\.fields\.([A-Za-z_ ]+)\}")


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board["templating"]["list"]}


def columns(panel: dict[str, Any]) -> set[str]:
    """Names a panel's queries produce: aliases, the tags and fields they select, and (in
    table format) the tags of their outermost GROUP BY."""
    found: set[str] = set()
    for t in panel["targets"]:
        group_by = re.search(r"GROUP BY ([^()]*)$", t["query"])
        if group_by and t["resultFormat"] == "table":
            found |= set(re.findall(r'"([^"]+)"', group_by.group(1)))
        found |= set(re.findall(r'AS "([^"]+)"', t["query"]))
        outer = re.match(r"SELECT (.*?) FROM", t["query"])
        assert outer is not None
        found |= set(re.findall(r'^"([^"]+)"$', outer.group(1).replace(", ", "\n"), re.M))
    return found


def field_links(panel: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(field the link sits on, link) of every data link of a panel."""
    config = panel["fieldConfig"]
    found = [("*", link) for link in config["defaults"].get("links", [])]
    for o in config["overrides"]:
        for prop in o["properties"]:
            if prop["id"] == "links":
                found += [(o["matcher"]["options"], link) for link in prop["value"]]
    return found


def test_the_ward_variable_shows_every_catalogue_ward_by_its_vietnamese_name() -> None:
    from telemetry.wards import ward_names  # noqa: PLC0415

    names = ward_names()
    for name, board in boards().items():
        ward = variables(board).get("ward")
        if ward is None:
            continue
        assert ward["type"] == "custom", name
        pairs = [item.split(" : ") for item in ward["query"].split(",")]
        assert {value: text for text, value in pairs} == names, name
        options = {o["value"]: o["text"] for o in ward["options"] if o["value"] != "$__all"}
        assert options == names, name
        assert ward["includeAll"]
        assert ward["allValue"] == ".*"
    assert names["phuong_dinh_cong"] == "Phường Định Công"


def test_every_board_filtered_by_ward_has_the_ward_variable() -> None:
    for name, board in boards().items():
        if any("$ward" in q for q in queries(board)):
            assert "ward" in variables(board), name


def test_data_links_point_at_existing_boards_variables_and_fields() -> None:
    checked = 0
    for name, board in boards().items():
        for p in board["panels"]:
            cols = columns(p)
            for field, link in field_links(p):
                m = re.match(r"^/d/([\w-]+)/[\w-]+\?(.*)$", link["url"])
                assert m, f"{name} {p['title']}: {link['url']}"
                target = BY_UID[m.group(1)]  # an existing board
                parts = m.group(2).split("&")
                assert parts[-1] == "${__url_time_range}", link["url"]  # keeps the time range
                for key, value in (kv.split("=", 1) for kv in parts[:-1]):
                    assert key[4:] in variables(target), f"{name}: {key} not on {target['uid']}"
                    for ref in FIELD_REF.findall(value):
                        assert ref in cols, f"{name} {p['title']}: no column {ref} for {key}"
                for ref in FIELD_REF.findall(link["title"]):
                    assert ref in cols, f"{name} {p['title']}: no column {ref}"
                assert field == "*" or field in cols, f"{name} {p['title']}: no field {field}"
                checked += 1
    assert checked >= 10


def test_boards_link_overview_to_ward_to_cabinet_or_route() -> None:
    def targets(uid: str) -> set[tuple[str, str]]:
        """(target board, variable) of every data link on a board."""
        found = set()
        for p in BY_UID[uid]["panels"]:
            for _, link in field_links(p):
                to = link["url"].split("/")[2]
                found |= {(to, v) for v in re.findall(r"var-(\w+)=", link["url"])}
        return found

    assert ("cw-ward", "ward") in targets("cw-city")
    assert {("cw-cabinet", "device"), ("cw-cables", "route")} <= targets("cw-ward")
    assert ("cw-cabinet", "device") in targets("cw-alerts")
    for uid, board in BY_UID.items():
        linked = {link["url"].split("/")[2] for link in board["links"]}
        assert linked == set(BY_UID) - {uid}, uid
        assert all(link["includeVars"] and link["keepTime"] for link in board["links"])


def test_maps_colour_devices_by_their_worst_open_alert() -> None:
    maps = [
        (name, p)
        for name, board in boards().items()
        for p in board["panels"]
        if p["type"] == "geomap" and any("citywatch_alert" in t["query"] for t in p["targets"])
    ]
    assert {name for name, _ in maps} == {"city-overview.json", "ward.json"}
    for name, p in maps:
        for layer in p["options"]["layers"]:  # the routes' lines and the devices
            assert layer["config"]["style"]["color"]["field"] == "level", name
        assert "level" in columns(p)
        assert [t["id"] for t in p["transformations"]][:2] == ["joinByField", "filterByValue"]
        (level,) = [o for o in p["fieldConfig"]["overrides"] if o["matcher"]["options"] == "level"]
        props = {prop["id"]: prop["value"] for prop in level["properties"]}
        values, special = props["mappings"]
        texts = {int(k): v["text"] for k, v in values["options"].items()}
        assert texts == {1: "warning", 2: "minor", 3: "major", 4: "critical", 5: "offline"}
        assert len({v["color"] for v in values["options"].values()}) == 5
        assert special["options"]["match"] == "null"


def test_the_maps_draw_every_cable_route_as_lines_under_the_devices() -> None:
    """Issue 14, section 5: routes were a chain of dots. Each segment's row now carries the
    span from the segment before it (``cable_span``, joined on the device), the spatial
    transformation turns it into a line, and a layer under the devices draws the lines
    (location auto: the frame's geo field), coloured by the worst open alert."""
    for uid in ("cw-city", "cw-ward"):
        (p,) = [p for p in BY_UID[uid]["panels"] if p["type"] == "geomap"]
        routes, devices = p["options"]["layers"]
        assert (routes["name"], devices["name"]) == ("Cable routes", "Devices"), uid
        assert routes["type"] == devices["type"] == "markers"
        assert routes["location"] == {"mode": "auto"}
        assert devices["location"] == {"mode": "coords", "latitude": "lat", "longitude": "lon"}
        style = routes["config"]["style"]
        assert style["lineWidth"] >= 3
        assert style["symbol"]["fixed"] == "img/icons/marker/circle.svg"  # its stroke: lines
        spans = [t for t in p["targets"] if '"cable_span"' in t["query"]]
        assert [t["refId"] for t in spans] == ["C"]
        join, *_, organize, spatial = p["transformations"]
        assert join["options"] == {"byField": "device", "mode": "outer"}
        assert organize["options"]["excludeByName"] == dict.fromkeys(
            ("Time", "Time 1", "Time 2", "Time 3"), True
        )  # one time column per query
        assert spatial["id"] == "spatial"
        options = spatial["options"]
        assert (options["action"], options["modify"]["op"]) == ("modify", "lineBuilder")
        ends = [options["source"], options["modify"]["target"]]
        assert [(e["latitude"], e["longitude"]) for e in ends] == [
            ("up_lat", "up_lon"),
            ("lat", "lon"),
        ]
        assert {"device", "up_lat", "up_lon", "lat", "lon", "level"} <= columns(p), uid
    # The device table of the ward board joins the same rows and draws no line.
    (table,) = [p for p in BY_UID["cw-ward"]["panels"] if p["title"].startswith("Devices")]
    assert "spatial" not in [t["id"] for t in table["transformations"]]


def test_the_cable_board_draws_the_route_in_position_order() -> None:
    (route_map,) = [p for p in BY_UID["cw-cables"]["panels"] if p["type"] == "geomap"]
    assert [layer["type"] for layer in route_map["options"]["layers"]] == ["route", "markers"]
    assert route_map["transformations"][-1]["options"]["sort"] == [{"field": "position"}]
    assert 'GROUP BY "route"' in route_map["targets"][0]["query"]


def test_time_series_boards_carry_alert_annotations() -> None:
    for uid in ("cw-cabinet", "cw-cables", "cw-alerts", "cw-ward"):
        annotations = {a["name"]: a for a in BY_UID[uid]["annotations"]["list"]}
        assert set(annotations) == {"Alerts raised", "Alerts cleared"}, uid
        for a in annotations.values():
            selected = set(re.findall(r'"(\w+)"', a["query"].split(" FROM ")[0]))
            shown = {a["titleColumn"], a["textColumn"], *a["tagsColumn"].split(",")}
            assert shown <= selected, uid
            assert {"device", "type", "explanation"} <= shown
        assert "'raised'" in annotations["Alerts raised"]["query"]
        assert "cleared|resolved" in annotations["Alerts cleared"]["query"]
