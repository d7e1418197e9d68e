"""``citywatch simulate`` stopped by SIGTERM (as ``citywatch demo`` stops it) still writes
the ground truth of the faults it injected before it stopped."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulators.labels import LABEL_COLUMNS

CITYWATCH = str(Path(sys.executable).parent / "citywatch")
START = "2026-07-15T10:00:00Z"
START_MS = 1784109600000
STORY = ["--devices", "200", "--scenario", "monsoon_evening", "--start", START]
STORY += ["--speed", "200", "--no-progress"]


def _reached_ms(stream: Path) -> int:
    """The newest report time in the stream so far (0 before a whole line)."""
    try:
        lines = stream.read_bytes().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines[:-1]):  # the last line may be half written
        return int(json.loads(line)["payload"]["ts"])
    return 0


def test_sigterm_still_writes_the_labels_so_far(tmp_path: Path) -> None:
    out, labels = tmp_path / "city.jsonl", tmp_path / "labels.csv"
    proc = subprocess.Popen(
        [CITYWATCH, "simulate", "--output", out, "--labels", labels, *STORY],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        # 42 simulated minutes: the scenario's faults due at 30-40 min are injected, the
        # mains outage (50 min) is not yet.
        while _reached_ms(out) < START_MS + 42 * 60_000:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            if time.monotonic() > deadline:
                pytest.fail("the simulation did not reach its first faults")
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert labels.exists(), err.decode()
    with labels.open() as src:
        rows = list(csv.DictReader(src))
    assert rows, "faults were injected before the stop"
    assert tuple(rows[0]) == LABEL_COLUMNS
    faults = {r["fault"] for r in rows}
    assert faults >= {"fibre_degradation", "flooding", "fan_failure", "cable_cut"}
    assert "mains_outage" not in faults  # due at 50 min: never came
