"""``citywatch detect`` on a CSV, a NAB-layout directory and a JSON-lines stream."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from citywatch.cli import app

runner = CliRunner()


def _write_series(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    start = np.datetime64("2024-01-01T00:00")
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["timestamp", "value"])
        for i, v in enumerate(values):
            out.writerow([str(start + np.timedelta64(5 * i, "m")).replace("T", " "), v])


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_csv_scores_use_only_the_past(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = 10 + rng.normal(0, 1, 300)
    x[250] = 40.0
    _write_series(tmp_path / "in.csv", x)
    res = runner.invoke(
        app, ["detect", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv")]
    )
    assert res.exit_code == 0, res.output
    rows = _read(tmp_path / "out.csv")
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    assert len(rows) == 300
    assert int(np.argmax(scores)) == 250
    # Only the past: truncating the input after row 250 leaves its scores unchanged.
    _write_series(tmp_path / "cut.csv", x[:251])
    runner.invoke(
        app,
        ["detect", "--input", str(tmp_path / "cut.csv"), "--output", str(tmp_path / "cut_out.csv")],
    )
    cut = np.array([float(r["anomaly_score"]) for r in _read(tmp_path / "cut_out.csv")])
    np.testing.assert_array_equal(cut, scores[:251])


def test_nab_layout_is_mirrored(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for name in ("catA/one.csv", "catB/two.csv"):
        _write_series(tmp_path / "data" / name, rng.normal(0, 1, 50))
    res = runner.invoke(
        app, ["detect", "--input", str(tmp_path / "data"), "--output", str(tmp_path / "out")]
    )
    assert res.exit_code == 0, res.output
    for name in ("catA/one.csv", "catB/two.csv"):
        rows = _read(tmp_path / "out" / name)
        assert list(rows[0]) == ["timestamp", "value", "anomaly_score"]
        assert len(rows) == 50


def test_bad_rows_are_named(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text(
        "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,abc\n"
    )
    res = runner.invoke(
        app, ["detect", "--input", str(tmp_path / "bad.csv"), "--output", str(tmp_path / "o.csv")]
    )
    assert res.exit_code == 2
    (tmp_path / "nohead.csv").write_text("a,b\n1,2\n")
    res = runner.invoke(
        app,
        ["detect", "--input", str(tmp_path / "nohead.csv"), "--output", str(tmp_path / "o.csv")],
    )
    assert res.exit_code == 2


def test_jsonl_stream_with_a_rejected_line(tmp_path: Path) -> None:
    t0 = 1_750_000_000_000
    lines = []
    for i in range(80):
        temp = 30.0 + 0.1 * (i % 3) if i < 70 else 58.0
        payload = {
            "v": 1,
            "device": "cab-000001",
            "kind": "cabinet",
            "ts": t0 + i * 60_000,
            "seq": i,
            "metrics": {"temp_inside": temp, "door_open": False},
        }
        lines.append(
            json.dumps({"topic": "cw/v1/ba_dinh/cabinet/cab-000001/telemetry", "payload": payload})
        )
    lines.insert(
        5, json.dumps({"topic": "cw/v1/ba_dinh/cabinet/cab-000001/telemetry", "payload": {"v": 1}})
    )
    src = tmp_path / "sim.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scored.jsonl"
    res = runner.invoke(app, ["detect", "--input", str(src), "--output", str(out)])
    assert res.exit_code == 0, res.output
    records = [json.loads(x) for x in out.read_text().splitlines()]
    readings = [r for r in records if r["type"] == "reading"]
    assert len(readings) == 160
    assert all(0.0 <= r["onset_score"] < 1.0 for r in readings)
    limits = [r for r in records if r["type"] == "detection" and r["kind"] == "limit"]
    assert limits
    assert limits[0]["active"]
    assert limits[0]["severity"] == "critical"
    rejected = (tmp_path / "scored.jsonl.rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 1
    assert json.loads(rejected[0])["line"] == 6
