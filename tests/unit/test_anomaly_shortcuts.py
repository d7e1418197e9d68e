"""The detector's shortcuts change no result: rounds in pieces and the onset's tail bound
give the same scores, onset, events and state as whole rounds computed in full."""

from __future__ import annotations

import numpy as np
import pytest

import anomaly.calibrate
import anomaly.detector
from anomaly import Detector, DetectorConfig
from telemetry.catalogue import metric_id

MINUTE = 60_000
T0 = 1_750_000_000_000 - (1_750_000_000_000 % (24 * 3_600_000))


def _feed(det: Detector) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(5)
    n_series = 60
    metrics = [metric_id("cabinet", "temp_inside"), metric_id("cabinet", "humidity"), 0]
    for i in range(n_series):
        det.registry.slot(f"dev-{i}", metrics[i % 3], ward=f"w{i % 4}")
    level = rng.uniform(20, 40, n_series)
    scores, onset, events = [], [], []
    for step in range(80):
        slots = np.repeat(np.arange(n_series), 3)  # three readings a series per batch
        ts = T0 + (step * 3 + np.tile(np.arange(3), n_series)) * MINUTE
        x = level[slots] + rng.normal(0, 0.5, len(slots))
        x[(slots == 7) & (step == 60)] += 15.0  # a spike
        x[(slots == 11) & (step >= 50)] += 6.0  # a step
        x[(slots == 13) & (step >= 40) & (step < 55)] = 30.0  # stuck
        x[rng.uniform(size=len(x)) < 0.01] = np.nan
        perm = rng.permutation(len(x))
        res = det.update_arrays(slots[perm], ts[perm], x[perm])
        scores.append(res.scores)
        onset.append(res.onset)
        events.extend(repr(e) for e in res.events)
    return np.concatenate(scores), np.concatenate(onset), events


def test_pieces_and_tail_bound_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = DetectorConfig(warmup=10, tod_min_days=0.0, tod_min_count=2, onset_min_history=20)
    plain = Detector(cfg)
    monkeypatch.setattr(anomaly.detector, "PIECE", 1 << 30)
    monkeypatch.setattr(anomaly.calibrate, "_BOUND_MIN", 1 << 30)
    want = _feed(plain)
    short = Detector(cfg)
    monkeypatch.setattr(anomaly.detector, "PIECE", 7)
    monkeypatch.setattr(anomaly.calibrate, "_BOUND_MIN", 1)
    got = _feed(short)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[2] == want[2]
    assert len(want[2]) > 3, "the stream raises events"
    for name in plain.store:
        np.testing.assert_array_equal(short.store[name], plain.store[name], err_msg=name)
