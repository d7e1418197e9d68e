"""The onset score: calibrated per series, high where an anomaly starts, not after."""

from __future__ import annotations

import numpy as np

from anomaly.config import DetectorConfig
from anomaly.kernel import tail_decades
from anomaly.offline import score_series

MINUTE = 60_000


def test_tail_decades_matches_known_quantiles_and_stays_finite() -> None:
    # P(Z > z) = 0.5, 0.05, 2.87e-7, 1e-100 (z ~ 21.27); 0.3 % in p is 0.0013 decades.
    z = np.array([0.0, 1.6449, 5.0, 21.2735])
    want = np.array([np.log10(2.0), -np.log10(0.05), -np.log10(2.8665e-7), 100.0])
    got = np.array([tail_decades(float(v)) for v in z])
    np.testing.assert_allclose(got, want, atol=2e-3, rtol=0)
    far = np.array([tail_decades(v) for v in (-1e300, 1e300, -5.0, float("nan"))])
    assert np.all(np.isfinite(far))
    assert np.all(far >= 0.0)


def test_heavy_tailed_series_reports_the_shift_at_its_onset() -> None:
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
    reports = np.flatnonzero(onset[at : at + 100]) + at
    assert reports[0] == at, "reported where it starts"
    # Then only evidence that clearly grows (the coarse scales confirming the shift) is
    # reported again: a handful of rows, not the whole episode.
    assert len(reports) <= 4
    assert np.count_nonzero(before) <= 0.005 * len(before), "sparse: routine spikes stay quiet"
    # The raw max does not separate the shift from the spikes; the calibration does.
    assert raw[500:at].max() > 0.99
    assert np.all((onset >= 0.0) & (onset < 1.0))


def test_a_report_is_followed_by_a_quiet_period() -> None:
    """Within the refractory period after a report only twice its evidence reports: a
    run of escalating records (a ramp) is one report, not one per reading."""
    rng = np.random.default_rng(3)
    n, at = 2000, 1500
    x = 10.0 + rng.normal(0.0, 1.0, n)
    top, width = x[:at].max(), np.ptp(x[:at])
    x[at : at + 10] = top + np.arange(1, 11) * 0.1 * width  # ten records in a row
    ts = np.arange(n, dtype=np.int64) * 5 * MINUTE
    [onset] = score_series([(ts, x)])
    assert onset[at] > 0.5
    assert np.count_nonzero(onset[at + 1 : at + 10]) == 0


def test_a_daily_spike_of_a_routine_size_is_not_reported_every_day() -> None:
    """An outlier no farther from the baseline than the series' routine excursion (by the
    tolerance) is not news, though the baseline's scale breathes between spikes and the
    calibration's record of z is beaten by a hair (NAB's ec2_cpu_utilization_c6585a)."""
    rng = np.random.default_rng(5)
    n, day = 288 * 14, 288
    x = 0.07 + np.abs(rng.normal(0.0, 0.02, n))
    spikes = np.arange(100, n, day)
    x[spikes] = 1.45 + rng.uniform(-0.05, 0.05, len(spikes))
    ts = np.arange(n, dtype=np.int64) * 5 * MINUTE
    [onset] = score_series([(ts, x)])
    reported = [int(i) for i in spikes if onset[i] > 0.0]
    assert len(reported) <= 2, f"a routine spike is reported at most while it is new: {reported}"
    y = x.copy()
    y[n - 50] = 4.0  # a spike well beyond the routine size still reports
    [onset_y] = score_series([(ts, y)])
    assert onset_y[n - 50] > 0.5
