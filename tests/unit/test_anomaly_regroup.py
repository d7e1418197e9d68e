"""Regrouping detectors by ward keeps what every series learned: detectors split from one
(and merged back) score the rest of a stream exactly as the one that was never split."""

import numpy as np
import pytest

from anomaly import Detector
from anomaly.regroup import regroup
from telemetry import DeviceKind, ReadingBatch, Report

pytestmark = pytest.mark.unit

T0 = 1_764_300_000_000
WARDS = ("w_a", "w_b", "w_c", "w_d", "w_e")


def _stream(minutes: range, rng: np.random.Generator) -> ReadingBatch:
    reports, wards = [], []
    for minute in minutes:
        for d in range(15):
            level = 28.0 + d + (6.0 if minute > 70 and d == 3 else 0.0)  # a step at 70
            metrics: dict[str, float | bool] = {
                "temp_inside": float(level + rng.normal(0, 0.3)),
                "humidity": float(60 + rng.normal(0, 1)),
                "on_battery": bool(minute > 50 and d % 5 == 0),  # active at the regroup
            }
            ts = T0 + minute * 60_000 + d
            reports.append(Report(1, f"cab-{d}", DeviceKind.CABINET, ts, minute, metrics))
            wards.append(WARDS[d % len(WARDS)])
    return ReadingBatch.from_reports(reports, wards)


@pytest.mark.parametrize("shape", [(1, 3), (3, 2), (2, 1)])
def test_regrouped_detectors_score_the_rest_as_the_original(shape: tuple[int, int]) -> None:
    sources, targets = shape
    rng = np.random.default_rng(4)
    learn, rest = _stream(range(60), rng), _stream(range(60, 100), rng)

    whole = Detector()
    whole.update(learn)

    def part(ward: str, n: int) -> int:
        return WARDS.index(ward) % n

    split = [Detector() for _ in range(sources)]
    for s, det in enumerate(split):
        keep = np.array([part(str(w), sources) == s for w in learn.ward])
        det.update(
            ReadingBatch(
                learn.device[keep],
                learn.ward[keep],
                learn.metric[keep],
                learn.ts_ms[keep],
                learn.value[keep],
            )
        )
    moved = regroup(split, lambda ward: part(ward, targets), targets)
    assert sum(d.registry.size for d in moved) == whole.registry.size

    expected = whole.update(rest)
    got_scores = np.full(len(rest), np.nan)
    got_events = []
    for t, det in enumerate(moved):
        keep = np.flatnonzero([part(str(w), targets) == t for w in rest.ward])
        update = det.update(
            ReadingBatch(
                rest.device[keep],
                rest.ward[keep],
                rest.metric[keep],
                rest.ts_ms[keep],
                rest.value[keep],
            )
        )
        got_scores[keep] = update.scores
        got_events += update.events
    np.testing.assert_array_equal(got_scores, expected.scores)
    # Device rules stamp an event with their batch's time: same minute, other batches.
    key = lambda e: (e.kind, e.device, e.metric, e.ts_ms // 60_000)  # noqa: E731
    assert sorted(map(key, got_events)) == sorted(map(key, expected.events))
    assert expected.events  # the step and the battery rule fired: something to compare


def test_a_series_in_two_sources_is_refused() -> None:
    rng = np.random.default_rng(1)
    a, b = Detector(), Detector()
    a.update(_stream(range(3), rng))
    b.update(_stream(range(3), rng))
    with pytest.raises(ValueError, match="two source detectors"):
        regroup([a, b], lambda _ward: 0, 1)
