"""`citywatch simulate` flags: validated with clear errors; a file run writes data and labels."""

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citywatch.cli import app
from simulators.labels import LABEL_COLUMNS
from simulators.sinks import read_jsonl
from telemetry import decode_message

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one of --broker or --output"),
        (["--broker", "mqtt://h:1", "--output", "x.jsonl"], "exactly one of --broker or --output"),
        (["--broker", "http://h:1"], "scheme must be mqtt://"),
        (["--broker", "mqtt://h:notaport"], "bad port"),
        (["--output", "o.jsonl", "--period", "0"], "must be positive"),
        (["--output", "o.jsonl", "--devices", "0"], "at least 1"),
        (["--output", "o.jsonl", "--speed", "-1"], "must be >= 0"),
        (["--output", "o.jsonl", "--duration", "-5"], "must be positive"),
        (["--output", "o.jsonl", "--duration", "0", "--speed", "60"], "needs 0 < --speed <= 1"),
        (["--output", "o.jsonl", "--lead-in", "-1"], "must not be negative"),
        (["--output", "o.jsonl", "--start", "yesterday"], "is not ISO 8601"),
        (["--output", "o.jsonl", "--mode", "swarm"], "auto, per-device or pooled"),
        (
            ["--broker", "mqtt://127.0.0.1:1", "--devices", "5000", "--mode", "per-device"],
            "use the pooled mode",
        ),
        (["--output", "o.jsonl", "--scenario", "no_such"], "not a shipped scenario"),
        (["--output", "/no/such/dir/o.jsonl"], "does not exist"),
        (
            ["--output", "o.jsonl", "--scenario", "monsoon_evening", "--duration", "600"],
            "600 s ends before",
        ),
    ],
)
def test_bad_flags_are_refused_clearly(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--no-progress", *args], env={"COLUMNS": "400"})
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())


def test_file_run_with_scenario_writes_stream_and_labels(tmp_path: Path) -> None:
    out, labels = tmp_path / "city.jsonl", tmp_path / "labels.csv"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--output",
            str(out),
            "--devices",
            "300",
            "--speed",
            "0",
            "--scenario",
            "monsoon_evening",
            "--labels",
            str(labels),
            "--no-progress",
            "--start",
            "2026-07-15T10:00:00Z",
            "--period",
            "120",
        ],
    )
    assert result.exit_code == 0, result.output
    messages = read_jsonl(out)
    reports = [t for t, _ in messages if t.endswith("/telemetry")]
    assert 300 * 60 * 0.9 < len(reports) <= 300 * 60  # 2 h at 120 s (minus dead cabinets)
    end_ms = 1784109600000 + 2 * 3600 * 1000
    for topic, payload in messages:
        decode_message(topic, payload, now_ms=end_ms)
    with labels.open() as src:
        rows = list(csv.DictReader(src))
    assert tuple(rows[0]) == LABEL_COLUMNS
    assert {r["fault"] for r in rows} >= {"flooding", "mains_outage", "fan_failure"}
    assert all(r["scenario"] == "monsoon_evening" for r in rows)
    assert all(r["start"].endswith("Z") and r["start"] < r["end"] for r in rows)


def test_cut_scenario_plays_only_the_faults_that_fit(tmp_path: Path) -> None:
    """A --duration shorter than the scenario is refused (above) unless asked for: then
    the run plays, and its ground truth holds only faults that started within it."""
    labels = tmp_path / "labels.csv"
    args = ["--output", str(tmp_path / "o.jsonl"), "--scenario", "monsoon_evening"]
    result = runner.invoke(
        app,
        [
            "simulate",
            "--no-progress",
            *args,
            "--devices",
            "300",
            "--duration",
            "3000",
            "--cut-scenario",
            "--labels",
            str(labels),
        ],
    )
    assert result.exit_code == 0, result.output
    with labels.open() as f:
        rows = list(csv.DictReader(f))
    assert rows, "the faults that start within 3000 s are injected"
    faults = {r["fault"] for r in rows}
    assert "flooding" in faults  # at 35 and 45 min: within the 50 min played
    assert "mains_outage" not in faults  # at 50 min: cut
