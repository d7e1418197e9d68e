"""The onset score's new-extreme check (HTM's spatial anomaly): beyond the series' range."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from anomaly.config import DetectorConfig
from anomaly.offline import score_series

MINUTE = 60_000


def _series(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = np.arange(n, dtype=np.int64) * 5 * MINUTE
    return ts, 10.0 + rng.normal(0.0, 1.0, n)


def test_a_reading_beyond_the_observed_range_scores_its_certain_evidence() -> None:
    ts, x = _series(1500, 3)
    top, bottom = float(x.max()), float(x.min())
    x[1200] = top + 0.5 * (top - bottom)  # far beyond the 5 % margin of the range
    cfg = DetectorConfig()
    [onset] = score_series([(ts, x)], cfg)
    [off] = score_series([(ts, x)], dataclasses.replace(cfg, onset_extreme_decades=0.0))
    expected = cfg.onset_extreme_decades / (cfg.onset_extreme_decades + cfg.onset_half)
    # The record's evidence is at least the configured decades (its excess over an
    # idle series' decayed reports); without the check the same reading scores less.
    assert onset[1200] >= expected - 0.02
    assert onset[1200] > off[1200]


def test_values_inside_the_range_never_trigger_the_check() -> None:
    ts, x = _series(1500, 4)
    cfg = DetectorConfig()
    cfg = DetectorConfig(coarse_extreme_tolerance=1e9)  # the raw check alone
    head = x[: cfg.warmup]
    # After the warm-up, never beyond what the warm-up readings showed.
    x[cfg.warmup :] = np.clip(x[cfg.warmup :], head.min(), head.max())
    [onset] = score_series([(ts, x)], cfg)
    [off] = score_series([(ts, x)], dataclasses.replace(cfg, onset_extreme_decades=0.0))
    np.testing.assert_array_equal(onset, off)
    # The same series with one record does differ: the test can fail.
    x[1000] = head.max() + 2.0 * (head.max() - head.min())
    [once] = score_series([(ts, x)], cfg)
    assert once[1000] > off[1000]


def test_a_record_silences_the_burst_that_follows_it() -> None:
    ts, x = _series(2000, 5)
    top, bottom = float(x.max()), float(x.min())
    x[1500] = top + (top - bottom)  # the record
    x[1510:1520] = top  # aftershocks: within the new range, large for the baseline
    [onset] = score_series([(ts, x)])
    assert onset[1500] > 0.7
    assert onset[1501:1600].max() < 0.5 * onset[1500]


@pytest.mark.parametrize("name", ["onset_extreme_tolerance", "onset_extreme_decades"])
@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_negative_or_nan_settings_are_refused(name: str, bad: float) -> None:
    with pytest.raises(ValueError, match=name):
        DetectorConfig(**{name: bad})
