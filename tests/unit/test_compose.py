"""The compose stack, checked statically: valid against the compose-spec schema, images
pinned (InfluxDB a 1.x serving the tests' v1 API), every long-running service with a
healthcheck and restart policy, data in named volumes, mounted files present, secrets from
the environment, and every CITYWATCH_* variable it sets read by a settings class or a
CLI option of the command it runs."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer.main
import yaml

from api.settings import ApiSettings
from citywatch.cli import app
from ingest.config import IngestSettings

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_valid_against_the_compose_spec() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_images_are_pinned_and_influxdb_is_1x() -> None:
    services = compose()["services"]
    for name, service in services.items():
        image = service.get("image", "")
        if "build" in service:
            continue
        assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+", image), f"{name}: unpinned image {image}"
    assert services["influxdb"]["image"].startswith("influxdb:1.")


def test_long_running_services_have_healthchecks_restart_and_named_volumes() -> None:
    data = compose()
    named = set(data["volumes"])
    for name, service in data["services"].items():
        if service.get("profiles"):  # one-shot demo publisher
            continue
        assert "healthcheck" in service, name
        assert service.get("restart") == "unless-stopped", name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: mounts missing {source}"
            else:
                assert source in named, f"{name}: {source} is not a named volume"


def test_secrets_come_from_the_environment_and_are_required() -> None:
    text = COMPOSE.read_text()
    for secret in ("MQTT_INGEST_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "CITYWATCH_TICKET_SECRET"):
        assert f"${{{secret}:?" in text, f"{secret} must be required from .env"
    example = (ROOT / ".env.example").read_text()
    for variable in set(re.findall(r"\$\{(\w+)", text)):
        assert f"{variable}=" in example, f".env.example lacks {variable}"


def env_names_of_command(name: str) -> set[str]:
    command = typer.main.get_command(app)
    sub = command.commands[name]  # type: ignore[attr-defined]
    names: set[str] = set()
    for param in sub.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            names.add(envvar)
    return names


def settings_env_names(*classes: type[Any]) -> set[str]:
    names: set[str] = set()
    for cls in classes:
        prefix = cls.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields}
    return names


def test_every_citywatch_variable_is_read_by_the_service() -> None:
    service = compose()["services"]["citywatch"]
    assert service["command"] == ["run"]
    known = env_names_of_command("run") | settings_env_names(IngestSettings, ApiSettings)
    set_here = {k for k in service["environment"] if k.startswith("CITYWATCH_")}
    assert set_here
    assert set_here <= known, sorted(set_here - known)


def test_the_acl_file_compose_mounts_is_the_one_tested_on_a_real_broker() -> None:
    mosquitto = compose()["services"]["mosquitto"]
    assert "./deploy/mosquitto/acl:/mosquitto/config/acl:ro" in mosquitto["volumes"]
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf
    assert "acl_file /mosquitto/config/acl" in conf


def _mosquitto_settings(text: str) -> dict[str, str]:
    pairs = (line.split(None, 1) for line in text.splitlines() if line and line[0] != "#")
    return {p[0]: p[1].strip() for p in pairs if len(p) == 2}


def test_the_brokers_we_run_keep_ingests_backlog(tmp_path: Path) -> None:
    """Mosquitto's default queue (1,000 messages a session) lost 30 % of a 5 s ingest
    outage without a word: every broker citywatch configures persists and queues enough
    (README, "Broker settings ingest needs")."""
    from citywatch.local_services import LocalMosquitto  # noqa: PLC0415

    local = LocalMosquitto(tmp_path)
    local._command()  # writes its config (the server is not started)
    for text in (
        (ROOT / "deploy/mosquitto/mosquitto.conf").read_text(),
        (local.root / "mosquitto.conf").read_text(),
    ):
        conf = _mosquitto_settings(text)
        assert conf["persistence"] == "true"
        assert int(conf["max_queued_messages"]) >= 1_000_000
        assert conf["max_queued_bytes"] == "0"


def test_the_cluster_profile_runs_three_rabbitmq_nodes_two_workers_and_the_api() -> None:
    data = compose()
    cluster = {n: s for n, s in data["services"].items() if "cluster" in s.get("profiles", [])}
    assert {"rabbitmq-1", "rabbitmq-2", "rabbitmq-3", "worker-1", "worker-2", "api-cluster"} <= set(
        cluster
    )
    named = set(data["volumes"])
    conf = (ROOT / "deploy/rabbitmq/rabbitmq.conf").read_text()
    assert "mqtt.listeners.tcp.default" in conf
    assert "rabbitmq_mqtt" in (ROOT / "deploy/rabbitmq/enabled_plugins").read_text()
    for node in ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3"):
        assert f"rabbit@{node}" in conf  # every node in the peer list
        assert cluster[node]["hostname"] == node
    for name, service in cluster.items():
        assert "healthcheck" in service, name
        assert service.get("restart") == "unless-stopped", name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: mounts missing {source}"
            else:
                assert source in named, f"{name}: {source} is not a named volume"
    worker_env = env_names_of_command("worker")
    for name in ("worker-1", "worker-2"):
        service = cluster[name]
        assert service["command"] == ["worker"]
        env = service["environment"]
        assert set(env) <= worker_env, sorted(set(env) - worker_env)
        assert env["CITYWATCH_PARTITIONS"] == "8"  # every worker must agree
        assert env["CITYWATCH_STORE_URL"].startswith("postgresql+asyncpg://")
    api = cluster["api-cluster"]
    assert api["command"][0] == "api"
    assert set(api["environment"]) <= settings_env_names(ApiSettings) | env_names_of_command("api")
