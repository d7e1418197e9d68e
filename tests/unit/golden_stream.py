"""A golden stream for the detector kernel, and its run: ``python golden_stream.py OUT``
writes the outputs to OUT (.npz). ``test_anomaly_kernel.py`` runs it compiled in-process
and interpreted (``NUMBA_DISABLE_JIT=1``) in a subprocess and compares the two."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from anomaly import Detector, DetectorConfig
from telemetry.catalogue import metric_id

MINUTE = 60_000
T0 = 1_750_000_000_000 - (1_750_000_000_000 % (24 * 3_600_000))
SERIES = 6
STEPS = 160  # batches of three readings per series


def config() -> DetectorConfig:
    return DetectorConfig(
        warmup=20,
        tod_min_days=0.05,
        tod_min_count=2,
        onset_min_history=20,
        coarse_min_history=4,
        coarse_min_blocks=3,
    )


def run() -> dict[str, np.ndarray]:
    """Scores, onset, events (as text) and the state tables after the stream: every
    sub-detector, both coarse scales, NaN and inf, shuffled batches, a tick."""
    rng = np.random.default_rng(7)
    det = Detector(config(), capacity=2)
    metrics = [
        metric_id("cabinet", "temp_inside"),
        metric_id("cabinet", "fan_rpm"),
        metric_id("cabinet", "door_open"),
        metric_id("cable_segment", "moisture"),
        0,
        0,
    ]
    for i, m in enumerate(metrics):
        det.registry.slot(f"dev-{i}", m, ward=f"w{i % 2}")
    level = np.array([30.0, 2000.0, 0.0, 20.0, 100.0, 5.0])
    noise = np.array([0.5, 50.0, 0.0, 0.3, 3.0, 1.0])
    scores, onset, events = [], [], []
    for step in range(STEPS):
        slots = np.repeat(np.arange(SERIES), 3)
        ts = T0 + (step * 3 + np.tile(np.arange(3), SERIES)) * MINUTE
        x = level[slots] + noise[slots] * rng.normal(size=len(slots))
        x[slots == 2] = (rng.random(3) < 0.1).astype(float)
        x[(slots == 1) & (step % 40 < 10)] = 0.0  # the fan stops: its off value
        x[(slots == 0) & (step == 120)] += 30.0  # a spike past the critical limit
        if step >= 100:  # water ingress
            x[slots == 3] += 0.5 * (step - 100)
        x[(slots == 4) & (step >= 110) & (step < 125)] = 100.0  # stuck
        x[(slots == 5) & (step >= 130)] += 8.0  # a level shift
        x[rng.random(len(x)) < 0.01] = np.nan
        x[rng.random(len(x)) < 0.005] = np.inf
        keep = ~((slots == 5) & (step > 60) & (step < 70))  # a silence
        order = rng.permutation(np.flatnonzero(keep))
        res = det.update_arrays(slots[order], ts[order], x[order])
        got_scores = np.empty(len(x))
        got_onset = np.empty(len(x))
        got_scores[order], got_onset[order] = res.scores, res.onset
        scores.append(got_scores[keep])
        onset.append(got_onset[keep])
        events.extend(repr(e) for e in res.events)
        events.extend(repr(e) for e in det.tick(int(ts.max())))
    st = det.state
    return {
        "scores": np.concatenate(scores),
        "onset": np.concatenate(onset),
        "events": np.array(events, dtype=np.str_),
        "f64": st.f64[:SERIES].copy(),
        "f32": st.f32[:SERIES].copy(),
        "tod": st.tod[:SERIES].copy(),
    }


if __name__ == "__main__":
    np.savez(Path(sys.argv[1]), **run())
