"""Detector speed benchmark (run by hand): ``citywatch bench detector`` as a script.

python benchmarks/detector_speed.py [--json] [--series N] [--max-batch N]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from citywatch.cli import app

if __name__ == "__main__":
    sys.exit(app(["bench", "detector", *sys.argv[1:]]))
