"""Two days of a clean simulated city (nights when the fans stop, rain on the ducts, the
weather's swings) through the detector: after the warm-up, nothing that would reach a
crew. Level shifts are the one exception: their events last one reading and the alert
layer drops them while they are pending (see alerts/policy.py)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from anomaly import DetectionKind, Detector
from citywatch.cli import app
from citywatch.cmd_detect import iter_jsonl_batches

START_MS = 1_784_127_600_000 - 48 * 3_600_000  # 2026-07-13T22:00 Hanoi
WARM_UP_MS = 6 * 3_600_000


def test_two_clean_days_raise_nothing_but_level_shifts(tmp_path: Path) -> None:
    stream = tmp_path / "city.jsonl"
    logging.disable(logging.INFO)
    try:
        city = ["--devices", "100", "--seed", "1", "--scenario", "quiet_day"]
        when = ["--start", "2026-07-13T15:00:00Z", "--duration", str(48 * 3600)]
        app(
            ["simulate", "--output", str(stream), *city, *when, "--no-progress"],
            standalone_mode=False,
        )
    finally:
        logging.disable(logging.NOTSET)
    det = Detector()
    found: Counter[tuple[str, str | None]] = Counter()
    rejected: list[tuple[int, str]] = []
    batches = 0
    for batch in iter_jsonl_batches(stream, lambda line, why: rejected.append((line, why))):
        batches += 1
        events = det.update(batch).events + det.tick(int(batch.ts_ms.max()))
        for e in events:
            if e.active and e.ts_ms >= START_MS + WARM_UP_MS:
                found[(e.kind.value, e.metric)] += 1
    assert batches > 100
    assert rejected == []
    assert any(kind == DetectionKind.LEVEL_SHIFT.value for kind, _ in found)  # it did judge
    crew_facing = {key: n for key, n in found.items() if key[0] != "level_shift"}
    assert crew_facing == {}
