"""``citywatch demo`` (the README's first command) from a clean working directory: its
default data folder is relative, it starts private servers, plays the scenario through
the platform, raises alerts and stops everything it started."""

import os
import re
import subprocess
import sys
from pathlib import Path

from citywatch.local_services import free_port

CITYWATCH = str(Path(sys.executable).parent / "citywatch")


def test_demo_plays_a_scenario_end_to_end(tmp_path: Path) -> None:
    small_and_fast = ["--devices", "60", "--speed", "600", "--no-linger"]
    result = subprocess.run(
        [CITYWATCH, "demo", *small_and_fast, "--api-port", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    raised = re.search(r"alerts raised\s*│\s*(\d+)", out)
    assert raised is not None, out
    assert int(raised.group(1)) >= 1, out
    assert "finished (exit 0)" in out
    # It scores itself against the ground truth the simulator wrote.
    card = re.search(r"faults injected (\d+), caught (\d+)", out)
    assert card is not None, out
    assert int(card.group(1)) >= 1, out
    assert int(card.group(2)) >= 1, out
    assert re.search(r"median time to alert \d+\.\d min", out), out
    assert re.search(r"false alarms \d+", out), out
    data = tmp_path / "var" / "demo"
    assert (data / "labels.csv").read_text().count("\n") >= 2  # header + a fault
    assert (data / "detector.npz").exists()
    left = subprocess.run(["pgrep", "-f", str(data)], check=False, capture_output=True, text=True)
    assert left.stdout == "", f"servers left running: {left.stdout}"
