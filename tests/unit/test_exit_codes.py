"""Distinct exit codes with one clear line: a taken port before anything starts, an
unreachable broker apart from a usage error (``citywatch.exit_codes``)."""

import socket
from pathlib import Path

from typer.testing import CliRunner

from citywatch import exit_codes
from citywatch.cli import app
from citywatch.local_services import free_port

runner = CliRunner()


def test_run_with_its_api_port_taken_fails_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(
            app,
            ["run", "--api-port", str(port), "--data-dir", str(tmp_path / "data")],
            env={"COLUMNS": "300", "CITYWATCH_TICKET_SECRET": "x" * 40},
        )
    assert result.exit_code == exit_codes.UNAVAILABLE, result.output
    assert f"--api-port {port} on 127.0.0.1 is taken" in result.output
    assert "Traceback" not in result.output
    # Nothing was started: no private InfluxDB or Mosquitto data folder.
    assert not (tmp_path / "data" / "influxdb").exists()
    assert not (tmp_path / "data" / "mosquitto").exists()


def test_simulate_with_an_unreachable_broker_is_not_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "simulate",
            "--no-progress",
            "--broker",
            f"mqtt://127.0.0.1:{free_port()}",
            "--devices",
            "3",
            "--duration",
            "60",
        ],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == exit_codes.UNAVAILABLE, result.output
    assert "refused" in result.output
