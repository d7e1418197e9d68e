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
    found += [v["query"] for v in board["templating"]["list"]]
    found += [a["query"] for a in board["annotations"]["list"]]
    return found


def test_committed_boards_equal_the_generator_output() -> None:
    rendered = load_builder().render()
    committed = {
        p.name: p.read_text(encoding="utf-8") for p in (GRAFANA / "dashboards").glob("*.json")
    }
    assert committed == rendered, "run .venv/bin/python grafana/build.py and commit the result"


def test_the_five_boards_exist_with_stable_unique_uids() -> None:
    uids = {name: board["uid"] for name, board in boards().items()}
    assert uids == {
        "alerts.json": "cw-alerts",
        "cabinet-detail.json": "cw-cabinet",
        "cable-routes.json": "cw-cables",
        "city-overview.json": "cw-city",
        "pipeline-health.json": "cw-pipeline",
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
        refs.extend(v["datasource"] for v in board["templating"]["list"])
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
    assert "$timeFilter" in query or query.startswith("SHOW") or "last(" in query
