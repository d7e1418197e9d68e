"""The onset score: calibrated per series, high where an anomaly starts, not after."""

from __future__ import annotations

import numpy as np

from anomaly.calibrate import tail_decades
from anomaly.config import DetectorConfig
from anomaly.offline import score_series

MINUTE = 60_000


def test_tail_decades_matches_known_quantiles_and_stays_finite() -> None:
    # P(Z > z) = 0.5, 0.05, 2.87e-7, 1e-100 (z ~ 21.27); 0.3 % in p is 0.0013 decades.
    z = np.array([0.0, 1.6449, 5.0, 21.2735])
    want = np.array([np.log10(2.0), -np.log10(0.05), -np.log10(2.8665e-7), 100.0])
    np.testing.assert_allclose(tail_decades(z), want, atol=2e-3, rtol=0)
    far = tail_decades(np.array([-1e300, 1e300, -5.0]))
    assert np.all(np.isfinite(far))
    assert np.all(far >= 0.0)


def test_heavy_tailed_series_scores_the_shift_onset_once() -> None:
    rng = np.random.default_rng(11)
    n, at = 3000, 2200
    x = rng.lognormal(0.0, 1.0, n)  # routine large z: the raw max saturates on these
    x[at:] += 30.0  # a level shift far above the usual spikes
    ts = np.arange(n, dtype=np.int64) * 5 * MINUTE
    # The calibration alone: the new-extreme check (tests/unit/test_anomaly_onset_extreme.py)
    # would also, rightly, report the shifted regime's first records above every old value.
    cfg = DetectorConfig(onset_extreme_decades=0.0)
    [onset] = score_series([(ts, x)], cfg)
    [raw] = score_series([(ts, x)], cfg, view="max")
    before = onset[500:at]
    assert onset[at] > before.max(), "the shift's onset beats every routine spike"
    assert onset[at + 5 : at + 100].max() < onset[at] / 2, "reported once, not repeated"
    # The raw max does not separate the shift from the spikes; the calibration does.
    assert raw[500:at].max() > 0.99
    assert np.all((onset >= 0.0) & (onset < 1.0))
