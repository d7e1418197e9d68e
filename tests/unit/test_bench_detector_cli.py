"""``citywatch bench detector --json`` on a tiny stream: its last line is the figures
the issue names, and the state floor peer leaves the detector's state as it found it."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from anomaly import Detector
from citywatch.bench_detector import Stream, state_floor
from citywatch.cli import app


def test_json_line_holds_every_named_figure() -> None:
    tiny = ["--series", "300", "--max-batch", "1000", "--subsample", "200"]
    res = CliRunner().invoke(app, ["bench", "detector", "--json", *tiny])
    assert res.exit_code == 0, res.output
    figures = json.loads(res.stdout.strip().splitlines()[-1])
    for key in (
        "readings_per_s",
        "python_loop_ratio",
        "river_ratio",
        "ewma_bound_ratio",
        "bytes_per_series",
        "state_floor_ratio",
    ):
        assert figures[key] > 0, key
    assert figures["state_arrays"] >= 20
    assert [s["batch"] for s in figures["sizes"]] == [1000]


def test_state_floor_moves_state_without_changing_it() -> None:
    det = Detector(capacity=64)
    stream = Stream(50, seed=4)
    for i in range(50):
        det.registry.slot(f"d{i}", int(stream.metric[i]))
    for _ in range(3):
        det.update_arrays(*stream.batch(200))
    before = det.store.snapshot(det.registry.size)
    slots, ts, _ = stream.batch(500)
    state_floor(det, slots, ts)
    after = det.store.snapshot(det.registry.size)
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
