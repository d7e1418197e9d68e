"""One detector configuration, used by the live pipeline and by ``citywatch detect``.

Every number here is general (in units of each series' own noise, its own reporting
period, or the catalogue's physics), never fitted to one data set; the docstrings say why.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

SUB_DETECTORS: tuple[str, ...] = (
    "limits",
    "baseline",
    "time_of_day",
    "level_shift",
    "flatline",
    "dropout",
)
"""Names of the series-level sub-detectors, in scoring order (the kernel's order)."""


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Tuning of the whole detector. Frozen: one value is shared by every component."""

    detectors: tuple[str, ...] = SUB_DETECTORS
    """Which series-level sub-detectors run (the conformance tests run them one by one)."""
    warmup: int = 48
    """Readings a series must have learned before it may score or raise an event."""

    # Adaptive baseline (outlier-protected EWMA of level and absolute deviation).
    alpha: float = 0.005
    """EWMA weight of the level: a memory of ~1/alpha readings."""
    alpha_scale: float = 0.03
    """EWMA weight of the absolute deviation (the robust scale)."""
    clip_sigma: float = 3.0
    """Readings beyond this many scales are clipped before learning (outlier protection)."""
    rebaseline_run: int = 12
    """Consecutive outliers on one side after which the baseline accepts the new level."""
    scale_floor_rel: float = 1e-3
    """Scale floor relative to the level: a constant series still has a finite z."""
    scale_floor_abs: float = 1e-9
    alpha_slow: float = 0.001
    """EWMA weight of the long-run *unclipped* absolute deviation."""
    slow_floor: float = 1.0
    """The robust scale never drops below this share of the long-run deviation."""
    baseline_hold_ms: int = 6 * 3_600_000
    """After ``rebaseline_run`` outliers the baseline accepts the new level, but for this
    long a reading is also judged against the level before (until it is back within
    ``clip_sigma`` of it): a flood or a ramp that the baseline followed stays an anomaly
    for as long as it lasts; a level that stays this long is the new normal."""

    # Time of day (Hanoi local time, UTC+7).
    tod_bins: int = 24
    tod_alpha: float = 0.1
    """EWMA weight per bin; a bin sees a few readings a day, so it forgets in ~10 of them."""
    tod_min_days: float = 3.0
    """Days of history before the time-of-day baseline may score."""
    tod_min_count: int = 10
    """Readings a bin must have learned before it may score."""
    utc_offset_h: float = 7.0

    # Level shift (two-sided CUSUM on the clipped standardised residual).
    cusum_k: float = 1.0
    """Allowance in scales: drifts smaller than this never accumulate."""
    cusum_h: float = 12.0
    """Decision interval in scales: the CUSUM raises its event when it reaches this."""
    cusum_clip: float = 4.0

    # Flatline / stuck sensor.
    flatline_min_run: int = 6
    """Fewest identical consecutive readings that can count as stuck."""
    flatline_decades: float = 6.0
    """Surprise (-log10 probability of the run, given this series' repeat rate) that fires."""
    alpha_repeat: float = 0.01

    # Dropout.
    dropout_k: float = 3.0
    """A gap of this many expected periods fires (catalogue period, else the learned one)."""
    alpha_period: float = 0.05

    # From statistics to scores and events.
    z_half: float = 4.0
    """A z (in robust sigmas) of this size scores 0.5; score = z^4 / (z^4 + z_half^4)."""
    score_on: float = 0.8
    """A series-level event starts when a component's score reaches this (z ~ 5.3)."""
    score_off: float = 0.5
    """... and ends when it falls below this (hysteresis)."""
    limit_warn_score: float = 0.85
    limit_margin_rel: float = 0.01
    """Hysteresis of the physical limits as a share of the metric's valid range."""

    # Onset score (anomaly/kernel.py): per-series calibrated evidence, reported once.
    onset_from: tuple[str, ...] = ("baseline", "time_of_day", "level_shift")
    """Sub-detectors whose calibrated statistic feeds the onset score: surprises in the
    measured values. Sensor health (flatline, dropout) and physical limits are certain
    by construction and raise their own events; fed into the onset they would make
    every stuck or late generic series look like a process anomaly."""
    onset_short_alpha: float = 0.5
    """EWMA weight of the short average of ``log1p(|z|)``: a burst of a few readings
    counts more than one, one extreme reading still counts."""
    onset_long_alpha: float = 1.0 / 3000.0
    """EWMA weight of the long-run mean/spread of that average (a memory of ~10 days of
    5-minute readings, like HTM's likelihood history)."""
    onset_min_sd: float = 1e-3
    onset_min_history: int = 50
    """Judged readings a sub-detector's calibration needs before it gives evidence."""
    onset_half_life: float = 60.0
    """Readings over which the last report's evidence halves: an episode is reported at
    its onset; a new report must bring more evidence than what is left of the last."""
    onset_half: float = 5.0
    """Evidence in decades (-log10 p) that maps to an onset score of 0.5 (p = 1e-5)."""
    onset_report_min: float = 5.0
    """Evidence (decades) below which nothing is reported: the onset score is sparse,
    0 but where a new anomaly starts (as the best published NAB detectors' output)."""
    onset_escalate: float = 1.2
    """A new report needs this much more evidence than the decayed last one."""
    onset_refractory: int = 16
    """Readings after a report during which only ``onset_refractory_escalate`` times
    its evidence reports again: a run of escalating records is one report."""
    onset_refractory_escalate: float = 2.0
    onset_record_memory: float = 8000.0
    """Readings over which a calibrated statistic's record decays towards its mean:
    evidence counts only where the statistic beats its record, so a series that
    routinely shows a z of some size (a daily spike) reports it the first time only."""
    onset_excursion_tolerance: float = 0.3
    """An outlier (beyond ``clip_sigma`` of the baseline) whose distance from the baseline
    level does not beat the routine excursion of its side by this share gives no
    baseline or time-of-day evidence: a spike of a size the series shows every day is
    not news, though the scales its z is measured in have moved (the calibration's
    record of z is beaten by a hair). The routine excursion rises halfway towards each
    larger one and decays over ``onset_record_memory`` readings. The same share as
    ``coarse_extreme_tolerance``."""
    coarse_blocks: tuple[int, int] = (8, 64)
    """Readings per block of the two coarse time scales: the block means' own level,
    scale (calibrated like a reading's z) and range (a new-extreme check) see slow and
    day-long changes that stay inside what single readings show."""
    coarse_extreme_tolerance: float = 0.3
    """A block mean beyond the range of the block means before it by this share of
    that range is a new extreme of the coarse scale."""
    coarse_min_blocks: int = 8
    """Blocks a coarse scale must have seen before its new-extreme check counts."""
    coarse_min_history: int = 20
    """Judged blocks a coarse scale's calibration needs before it gives evidence."""
    coarse_memory: float = 200.0
    """Readings the block means' level and scale remember (at least 16 blocks)."""
    coarse_dispersion: bool = True
    """Also a new-extreme check on each block's mean absolute step ``|x - previous x|``
    (with ``coarse_extreme_tolerance``, in units of the range of the steps of the
    blocks before it): a change of the series' variability (it starts to oscillate or
    burst, or goes quiet) that stays inside its range of values and of block means."""

    # Device rules.
    fan_on_rpm: float = 2500.0
    heat_rise_c_per_h: float = 2.0
    overheat_min_c: float = 40.0
    fan_start_c: float = 30.0
    """The cabinets' fan controllers start the fan at this inside temperature."""
    fan_stopped_margin_c: float = 3.0
    """A fan at 0 rpm this far above its start temperature has failed (below it, the
    controller has switched it off: a state, not a fault)."""
    ingress_rise_per_h: float = 10.0
    """Duct moisture rising this fast (points per hour, the series' Holt trend, which
    remembers about an hour) is water coming in: rain lifts a duct a few points."""
    ingress_hold_margin: float = 5.0
    """... and the flood holds while the moisture stays within this many points of
    where the rise was seen (or above the flood limit)."""
    fibre_creep_db_per_h: float = 0.02
    """Optical loss rising by half a dB a day is degradation, not noise."""
    night_start_h: int = 22
    night_end_h: int = 6
    trend_level_periods: float = 15.0
    trend_periods: float = 60.0
    """Time constants, in expected periods, of the Holt level/trend every series keeps:
    the level-shift reference and the device rules' slopes (``°C/h``, ``dB/h``)."""

    # Area rule.
    area_share: float = 0.3
    """Share of a ward's cabinets going on battery within the window = one area outage."""
    area_min_cabinets: int = 3
    area_window_ms: int = 10 * 60_000

    # Onset score, new-extreme check (anomaly/kernel.py; HTM's "spatial anomaly").
    onset_extreme_tolerance: float = 0.05
    """A reading beyond everything the series has shown by more than this share of its
    observed range (max - min) is a new extreme; HTM's NAB detector uses the same 5 %."""
    onset_extreme_decades: float = 20.0
    """Evidence of a new extreme in decades: certain (p = 1e-20, onset 0.8 with
    ``onset_half`` 5); each doubling of the distance beyond the old extreme (in
    tolerance margins) adds as much again. Through the reported-evidence decay it also
    keeps the burst that follows a record (aftershocks, recovery) from being reported
    again for about two half-lives. 0 turns the check off."""

    def __post_init__(self) -> None:
        unknown = (set(self.detectors) | set(self.onset_from)) - set(SUB_DETECTORS)
        if unknown:
            raise ValueError(f"unknown sub-detector(s) {sorted(unknown)}; known: {SUB_DETECTORS}")
        for name in (
            "alpha",
            "alpha_scale",
            "tod_alpha",
            "alpha_repeat",
            "alpha_period",
            "onset_short_alpha",
            "onset_long_alpha",
        ):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if not 0.0 < self.score_off < self.score_on < 1.0:
            raise ValueError("need 0 < score_off < score_on < 1")
        if self.warmup < 1 or self.tod_bins < 1 or self.flatline_min_run < 2:
            raise ValueError("warmup, tod_bins must be >= 1 and flatline_min_run >= 2")
        if len(self.coarse_blocks) != 2 or min(self.coarse_blocks) < 2:
            raise ValueError(
                f"coarse_blocks must be two block lengths >= 2, got {self.coarse_blocks}"
            )
        for name in (
            "scale_floor_abs",
            "clip_sigma",
            "cusum_h",
            "z_half",
            "dropout_k",
            "flatline_decades",
            "onset_min_sd",
            "onset_half_life",
            "onset_half",
            "onset_escalate",
            "onset_refractory_escalate",
            "onset_record_memory",
            "coarse_memory",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        for name in (
            "onset_extreme_tolerance",
            "onset_extreme_decades",
            "onset_report_min",
            "onset_refractory",
            "onset_excursion_tolerance",
            "coarse_extreme_tolerance",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def z_on(self) -> float:
        """The z that maps to ``score_on``: other statistics are scaled to fire there.

        Examples
        --------
        >>> round(DetectorConfig().z_on, 2)
        5.66
        """
        return float(self.z_half * (self.score_on / (1.0 - self.score_on)) ** 0.25)

    def to_json(self) -> str:
        """A JSON text of the settings (stored in checkpoints)."""
        data = asdict(self)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DetectorConfig:
        """Inverse of :meth:`to_json`; unknown keys raise ``ValueError``."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        bad = set(data) - known
        if bad:
            raise ValueError(f"unknown detector setting(s) {sorted(bad)}")
        for key in ("detectors", "onset_from", "coarse_blocks"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)
