"""One conformance test applied to every sub-detector (the river idea): shapes, scores in
[0, 1], no NaN escapes, batch == sequential, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly import SUB_DETECTORS, Detector, DetectorConfig
from telemetry.catalogue import metric_id

MINUTE = 60_000


def _stream(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[str, int]]]:
    """Four series (a catalogue float, a bool, two generic) with noise, a spike, a stuck
    stretch, a gap, NaN and inf, shuffled across series."""
    rng = np.random.default_rng(seed)
    keys = [
        ("cab-1", metric_id("cabinet", "temp_inside")),
        ("cab-1", metric_id("cabinet", "door_open")),
        ("gen-a", 0),
        ("gen-b", 0),
    ]
    n = 160
    rows = []
    for k in range(len(keys)):
        ts = np.arange(n, dtype=np.int64) * MINUTE + k
        x = 30 + rng.normal(0, 1, n)
        if k == 1:
            x = (rng.random(n) < 0.1).astype(float)
        x[100] += 30  # spike (also above the critical limit of temp_inside)
        x[120:130] = x[119]  # stuck
        ts[140:] += 20 * MINUTE  # gap
        if k != 1:
            x[145:] += 5.0  # level shift
        x[60] = np.nan
        x[61] = np.inf
        rows.append((np.full(n, k), ts, x))
    slots = np.concatenate([r[0] for r in rows])
    ts = np.concatenate([r[1] for r in rows])
    x = np.concatenate([r[2] for r in rows])
    order = rng.permutation(len(x))
    # Keep each series in time order inside the shuffle half the time: both paths of rounds.
    if seed % 2:
        order = np.sort(order)
    return slots[order], ts[order], x[order], keys


@pytest.fixture(params=SUB_DETECTORS)
def config(request: pytest.FixtureRequest) -> DetectorConfig:
    return DetectorConfig(detectors=(request.param,), warmup=20, tod_min_days=0.01, tod_min_count=2)


def _detector(config: DetectorConfig, keys: list[tuple[str, int]]) -> Detector:
    det = Detector(config, capacity=2)
    for dev, met in keys:
        det.registry.slot(dev, met, ward="w1")
    return det


@pytest.mark.parametrize("seed", [1, 2])
def test_conformance(config: DetectorConfig, seed: int) -> None:
    slots, ts, x, keys = _stream(seed)
    batch = _detector(config, keys).update_arrays(slots, ts, x, components=True)
    assert batch.scores.shape == x.shape
    assert np.all(np.isfinite(batch.scores))
    assert batch.scores.min() >= 0.0
    assert batch.scores.max() <= 1.0
    assert batch.scores.max() > 0.5, "the stream holds a fault every sub-detector should see"
    assert not np.any(batch.scores[~np.isfinite(x)]), "non-finite readings score 0"

    # Sequential: one reading at a time, in time order (ties in input order).
    order = np.lexsort((np.arange(len(x)), ts, slots))
    det = _detector(config, keys)
    seq = np.empty_like(batch.scores)
    seq_events = []
    for i in order:
        res = det.update_arrays(slots[i : i + 1], ts[i : i + 1], x[i : i + 1])
        seq[i] = res.scores[0]
        seq_events.extend(res.events)
    np.testing.assert_array_equal(seq, batch.scores)
    assert sorted(map(repr, seq_events)) == sorted(map(repr, batch.events))

    # Determinism: the same input twice gives bit-identical output.
    again = _detector(config, keys).update_arrays(slots, ts, x)
    np.testing.assert_array_equal(again.scores, batch.scores)
