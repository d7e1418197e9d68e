"""Series-level sub-detectors: a tiny API in the spirit of river.

Each sub-detector owns some state columns, *scores* a round from the state before it
(pure: no state change) and then *learns* from it. Scores are in [0, 1], one per
reading, 0 for readings it cannot judge (warm-up, non-finite values, bool metrics for
the statistical ones). Besides the score it returns ``z`` (the statistic behind it, for
explanations) and ``ref`` (what the detector expected).

Every statistic is measured in the series' own units of noise (robust scale), its own
repeat rate or its own reporting period, so one configuration fits any series.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from anomaly.config import DetectorConfig, squash
from anomaly.context import DAY_MS, BoolArray, FloatArray, Round, Store, every, put, some
from anomaly.events import DetectionKind

_MAD_TO_SIGMA = 1.2533  # mean absolute deviation -> standard deviation (normal noise)


class Scores(NamedTuple):
    """One sub-detector's verdict on a round."""

    score: FloatArray
    z: FloatArray
    ref: FloatArray
    judged: BoolArray | None = None
    """Readings the statistic is meaningful for (the calibration learns only those);
    None: the readings with a positive score."""


class SeriesDetector(Protocol):
    """The sub-detector API; ``tests/unit/test_anomaly_conformance.py`` checks each one."""

    name: str
    kind: DetectionKind

    def allocate(self, store: Store, capacity: int) -> None:
        """Add this detector's state columns to ``store``."""

    def score(self, r: Round, store: Store) -> Scores:
        """Judge each reading of the round from the state before it (no side effects)."""

    def learn(self, r: Round, store: Store) -> None:
        """Fold the round into the state."""


def _floor(level: FloatArray, cfg: DetectorConfig) -> FloatArray:
    """The scale floor relative to the level: a constant series keeps a finite z."""
    floor = np.abs(level)
    np.multiply(floor, cfg.scale_floor_rel, out=floor)
    np.add(floor, cfg.scale_floor_abs, out=floor)
    return floor


def _scale(
    dev: FloatArray,
    level: FloatArray,
    cfg: DetectorConfig,
    sensor: FloatArray,
    slow: FloatArray | None = None,
) -> FloatArray:
    """Robust sigma, floored: relative to the level, to the sensor's own noise floor
    (``Round.sensor_floor``; NaN for none), and (``slow``) to a fraction of the long-run
    unclipped deviation, so a mostly-constant series with rare bursts keeps a finite
    scale instead of collapsing to zero and alarming at every burst."""
    floor = _floor(level, cfg)
    np.fmax(floor, sensor, out=floor)
    if slow is not None:
        np.fmax(floor, slow * (cfg.slow_floor * _MAD_TO_SIGMA), out=floor)
    scale = dev * _MAD_TO_SIGMA
    return np.fmax(scale, floor, out=scale)


def _gated(score: FloatArray, ok: BoolArray, all_ok: bool) -> FloatArray:
    # Scores come from ``squash`` or a table: never NaN, so one select does.
    return score if all_ok else np.where(ok, score, 0.0)


def _squashed(stat: FloatArray, ok: BoolArray, all_ok: bool, cfg: DetectorConfig) -> FloatArray:
    """``squash`` of a fresh statistic array (reused), gated; no work when none is ok."""
    if not all_ok and not some(ok):
        return np.zeros(len(stat))
    return _gated(squash(stat, cfg.z_half, inplace=True), ok, all_ok)


def _fill_first(first: BoolArray, x: FloatArray, level: FloatArray) -> tuple[FloatArray, bool]:
    """``level`` with its NaN (a series' first reading) replaced by ``x``."""
    if some(first):
        return np.where(first, x, level), True
    return level, False


def _robust_step(
    x: FloatArray,
    level: FloatArray,
    dev: FloatArray,
    inv_n1: FloatArray,
    *,
    alpha: float | FloatArray,
    alpha_scale: float | FloatArray,
    cfg: DetectorConfig,
    clip: BoolArray,
    sensor: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One outlier-protected EWMA step of level and absolute deviation; also returns the
    absolute residual against the level (the first reading's: 0).

    Readings beyond ``clip_sigma`` scales are pulled to that bound before learning (where
    ``clip``), so a spike moves the baseline by a bounded amount. The first readings use
    the running mean (weight ``inv_n1`` = 1/(n+1)) so the start is not biased to the first
    value.
    """
    first = np.isnan(level)
    level, any_first = _fill_first(first, x, level)
    bound = _scale(dev, level, cfg, sensor)
    np.multiply(bound, cfg.clip_sigma, out=bound)
    if not every(clip):
        bound = np.where(clip, bound, np.inf)
    resid = x - level
    abs_resid = np.abs(resid)
    a = np.maximum(alpha, inv_n1)
    a_s = a if alpha_scale is alpha else np.maximum(alpha_scale, inv_n1)
    # level + a * clip(resid, -bound, bound), in place
    np.maximum(resid, -bound, out=resid)
    np.minimum(resid, bound, out=resid)
    np.multiply(resid, a, out=resid)
    new_level = np.add(level, resid, out=resid)
    # dev + a_s * (min(|resid|, bound) - dev)
    step = np.minimum(abs_resid, bound)
    np.subtract(step, dev, out=step)
    np.multiply(step, a_s, out=step)
    new_dev = np.add(dev, step, out=step)
    if any_first:
        new_dev[first] = 0.0
    return new_level, new_dev, abs_resid


class Limits:
    """Physical alarm limits of the catalogue, with hysteresis.

    A level (0 ok, 1 warn, 2 crit) is entered when a limit is crossed (high limits
    inclusive, low limits strict: ``signal < 1`` is lost light) and left only once the
    value is back inside by a margin (a share of the valid range), so a reading
    wobbling on a limit does not flap.
    """

    name = "limits"
    kind = DetectionKind.LIMIT

    def allocate(self, store: Store, capacity: int) -> None:
        store.add("lim_level", capacity, 0.0)

    @staticmethod
    def _level(x: FloatArray, lim: FloatArray, inward: FloatArray | None) -> FloatArray:
        # NaN (no limit, or a non-finite reading) compares False, without a warning.
        if inward is None:  # the limits themselves
            warn = (x < lim[:, 0]) | (x >= lim[:, 1])
            crit = (x < lim[:, 2]) | (x >= lim[:, 3])
        else:
            warn = (x < lim[:, 0] + inward) | (x >= lim[:, 1] - inward)
            crit = (x < lim[:, 2] + inward) | (x >= lim[:, 3] - inward)
        return np.where(crit, 2.0, warn)

    def _new_level(self, r: Round, store: Store) -> FloatArray:
        if "lim" not in r.cache:
            outer = self._level(r.x, r.limits, None)
            inner = self._level(r.x, r.limits, r.limits[:, 4])
            prev = None
            if not r.all_learnable or some(inner):  # else the hysteresis cannot hold a level
                prev = store["lim_level"].take(r.slots)
                new = np.maximum(outer, np.minimum(prev, inner))
            else:
                new = outer
            r.cache["lim"] = (
                new if prev is None or r.all_learnable else np.where(r.learnable, new, prev)
            )
        level: FloatArray = r.cache["lim"]
        return level

    def score(self, r: Round, store: Store) -> Scores:
        level = self._new_level(r, store)
        table = np.array([0.0, r.config.limit_warn_score, 1.0])
        score = table.take(level.astype(np.intp))
        return Scores(_gated(score, r.learnable, r.all_learnable), level, np.full(len(r), np.nan))

    def learn(self, r: Round, store: Store) -> None:
        store["lim_level"][r.slots] = self._new_level(r, store)
        del r.cache["lim"]  # learn folds the round in: a later score sees the new state


class Baseline:
    """Adaptive baseline: outlier-protected EWMA level and robust scale, z-score.

    After ``rebaseline_run`` outliers in a row on one side the series has moved for
    good (a level shift the CUSUM reports): the baseline jumps to a fast EWMA of the
    recent readings instead of crawling there and alarming all the way.
    """

    name = "baseline"
    kind = DetectionKind.BASELINE

    def allocate(self, store: Store, capacity: int) -> None:
        store.add("base_level", capacity, np.nan)
        store.add("base_dev", capacity, 0.0)
        store.add("base_fast", capacity, np.nan)
        store.add("base_run", capacity, 0.0)
        store.add("base_slow", capacity, 0.0)

    def _z(self, r: Round, store: Store) -> tuple[FloatArray, FloatArray]:
        if "base" not in r.cache:
            level = store["base_level"].take(r.slots)
            dev, slow = store["base_dev"].take(r.slots), store["base_slow"].take(r.slots)
            scale = _scale(dev, level, r.config, r.sensor_floor, slow)
            r.cache["base_dev"], r.cache["base_slow"] = dev, slow
            z = np.subtract(r.x, level)
            np.divide(z, scale, out=z)
            r.cache["base"] = (z, level)
        z, level = r.cache["base"]
        return z, level

    def score(self, r: Round, store: Store) -> Scores:
        z, level = self._z(r, store)
        ok = r.judge_ok
        return Scores(_squashed(np.abs(z), ok, r.all_judge_ok, r.config), z, level, ok)

    def learn(self, r: Round, store: Store) -> None:
        cfg, s = r.config, r.slots
        z, level = self._z(r, store)
        warm = r.warm
        new_level, new_dev, abs_resid = _robust_step(
            r.x,
            level,
            r.cache["base_dev"],
            r.inv_n1,
            alpha=cfg.alpha,
            alpha_scale=cfg.alpha_scale,
            cfg=cfg,
            clip=warm,
            sensor=r.sensor_floor,
        )
        fast_prev = store["base_fast"].take(s)
        fast = np.subtract(r.x, fast_prev)
        np.multiply(fast, 2.0 / (cfg.rebaseline_run + 1.0), out=fast)
        np.add(fast, fast_prev, out=fast)
        fast, _ = _fill_first(np.isnan(fast_prev), r.x, fast)
        # Outliers in a row on one side; the usual round has none, and no run to extend.
        outlier = np.abs(z) > cfg.clip_sigma
        outlier &= warm
        slow_prev = r.cache["base_slow"]
        slow = abs_resid - slow_prev  # |x - level|, the first reading's 0
        np.multiply(slow, np.maximum(cfg.alpha_slow, r.inv_n1), out=slow)
        np.add(slow, slow_prev, out=slow)
        updates = [("base_dev", new_dev), ("base_fast", fast), ("base_slow", slow)]
        run = store["base_run"].take(s)
        if some(outlier) or some(run):  # else every run is and stays 0: nothing to write
            side = np.where(outlier, np.sign(z), 0.0)
            run = np.where(side == 0, 0.0, np.where(np.sign(run) == side, run + side, side))
            moved = np.abs(run) >= cfg.rebaseline_run
            new_level = np.where(moved, fast, new_level)
            updates.append(("base_run", np.where(moved, 0.0, run)))
        updates.append(("base_level", new_level))
        for name, new in updates:
            put(store[name], s, r.learn_ok, new, r.all_learn_ok)


class TimeOfDay:
    """What this series usually reads at this hour (Hanoi local time): one robust EWMA
    level and scale per hour bin. Each reading weighs by the time it covers, so a bin's
    memory is ~1/tod_alpha days whatever the reporting period."""

    name = "time_of_day"
    kind = DetectionKind.TIME_OF_DAY

    def __init__(self, config: DetectorConfig) -> None:
        self.bins = config.tod_bins
        self.offset_ms = round(config.utc_offset_h * 3_600_000)

    def allocate(self, store: Store, capacity: int) -> None:
        store.add("tod_level", capacity, np.nan, width=self.bins)
        store.add("tod_dev", capacity, 0.0, width=self.bins)
        store.add("tod_n", capacity, 0.0, width=self.bins)
        store.add("tod_slow", capacity, 0.0)

    def bin_of(self, ts_ms: FloatArray | np.ndarray) -> np.ndarray:
        """Local-time bin of each timestamp."""
        local = (np.asarray(ts_ms, dtype=np.int64) + self.offset_ms) % DAY_MS
        np.multiply(local, self.bins, out=local)
        np.floor_divide(local, DAY_MS, out=local)
        return local

    def _state(
        self, r: Round, store: Store
    ) -> tuple[np.ndarray, FloatArray, FloatArray, FloatArray]:
        if "tod" not in r.cache:
            # Flat indices into the raveled tables: cheaper than a 2-D fancy index.
            flat = r.slots * self.bins
            np.add(flat, self.bin_of(r.ts_ms), out=flat)
            r.cache["tod"] = (
                flat,
                store["tod_level"].reshape(-1).take(flat),
                store["tod_dev"].reshape(-1).take(flat),
                store["tod_n"].reshape(-1).take(flat),
            )
        flat, level, dev, count = r.cache["tod"]
        return flat, level, dev, count

    def score(self, r: Round, store: Store) -> Scores:
        cfg = r.config
        _, level, dev, count = self._state(r, store)
        slow = store["tod_slow"].take(r.slots)
        r.cache["tod_slow"] = slow
        z = np.subtract(r.x, level)
        np.divide(z, _scale(dev, level, cfg, r.sensor_floor, slow), out=z)
        ok = r.ts_ms - r.first_ts >= cfg.tod_min_days * DAY_MS
        ok &= r.judge_ok
        ok &= count >= cfg.tod_min_count
        return Scores(_squashed(np.abs(z), ok, False, cfg), z, level, ok)

    def learn(self, r: Round, store: Store) -> None:
        cfg = r.config
        b, level, dev, count = self._state(r, store)
        bin_ms = DAY_MS / self.bins
        # dt >= 0 or NaN: fmin(dt, bin) is nan_to_num(dt, nan=bin) capped at a bin.
        alpha = np.fmin(r.dt_ms, bin_ms)
        np.multiply(alpha, cfg.tod_alpha, out=alpha)
        np.divide(alpha, bin_ms, out=alpha)
        new_count = count + 1.0
        new_level, new_dev, abs_resid = _robust_step(
            r.x,
            level,
            dev,
            1.0 / new_count,
            alpha=alpha,
            alpha_scale=alpha,
            cfg=cfg,
            clip=count >= 3,
            sensor=r.sensor_floor,
        )
        ok = r.learn_ok
        slow_prev = r.cache.get("tod_slow")
        if slow_prev is None:
            slow_prev = store["tod_slow"].take(r.slots)
        new_slow = abs_resid - slow_prev
        np.multiply(new_slow, np.maximum(cfg.alpha_slow, r.inv_n1), out=new_slow)
        np.add(new_slow, slow_prev, out=new_slow)
        put(store["tod_slow"], r.slots, ok, new_slow, r.all_learn_ok)
        if not r.all_learn_ok:
            b, new_level, new_dev, new_count = b[ok], new_level[ok], new_dev[ok], new_count[ok]
        store["tod_level"].reshape(-1)[b] = new_level
        store["tod_dev"].reshape(-1)[b] = new_dev
        store["tod_n"].reshape(-1)[b] = new_count


class LevelShift:
    """Two-sided CUSUM of the clipped standardised residual against the series' Holt
    forecast (level + trend), so smooth daily drifts never accumulate but a step does.

    Residuals smaller than ``cusum_k`` scales are allowance; a sustained shift reaches
    ``cusum_h`` in a few readings, the sums then restart while the forecast catches up.
    """

    name = "level_shift"
    kind = DetectionKind.LEVEL_SHIFT

    def allocate(self, store: Store, capacity: int) -> None:
        store.add("cusum_dev", capacity, 0.0)
        store.add("cusum_pos", capacity, 0.0)
        store.add("cusum_neg", capacity, 0.0)

    def _sums(self, r: Round, store: Store) -> tuple[FloatArray, FloatArray, FloatArray]:
        if "cusum" not in r.cache:
            cfg = r.config
            dev = store["cusum_dev"].take(r.slots)
            scale = _scale(dev, r.pred, cfg, r.sensor_floor)
            resid = np.subtract(r.x, r.pred)
            np.divide(resid, scale, out=resid)
            np.maximum(resid, -cfg.cusum_clip, out=resid)
            np.minimum(resid, cfg.cusum_clip, out=resid)
            off = np.isnan(resid)
            if not r.all_warm:
                off |= ~r.warm
            if some(off):
                resid[off] = 0.0
            pos = store["cusum_pos"].take(r.slots)
            np.add(pos, resid, out=pos)
            np.subtract(pos, cfg.cusum_k, out=pos)
            np.maximum(0.0, pos, out=pos)
            neg = store["cusum_neg"].take(r.slots)
            np.subtract(neg, resid, out=neg)
            np.subtract(neg, cfg.cusum_k, out=neg)
            np.maximum(0.0, neg, out=neg)
            r.cache["cusum"] = (pos, neg, scale, dev, np.maximum(pos, neg))
        pos, neg, scale, _, _ = r.cache["cusum"]
        return pos, neg, scale

    def score(self, r: Round, store: Store) -> Scores:
        cfg = r.config
        pos, neg, _ = self._sums(r, store)
        stat: FloatArray = r.cache["cusum"][4]
        if not some(stat):  # every sum at rest: score and z are 0
            return Scores(np.zeros(len(r)), np.zeros(len(r)), r.pred)
        z = np.where(pos >= neg, stat, -stat)
        np.divide(z, cfg.cusum_h, out=z)
        ok = r.judge_ok
        score = _squashed(cfg.z_on * stat / cfg.cusum_h, ok, r.all_judge_ok, cfg)
        return Scores(score, z, r.pred)

    def learn(self, r: Round, store: Store) -> None:
        cfg, s = r.config, r.slots
        pos, neg, scale = self._sums(r, store)
        dev, stat = r.cache["cusum"][3], r.cache["cusum"][4]
        bound = scale * cfg.clip_sigma
        if not r.all_warm:
            bound = np.where(r.warm, bound, np.inf)
        step = np.subtract(r.x, r.pred)
        np.abs(step, out=step)
        np.minimum(step, bound, out=step)
        np.subtract(step, dev, out=step)
        np.multiply(step, np.maximum(cfg.alpha_scale, r.inv_n1), out=step)
        new_dev = np.add(dev, step, out=step)
        unknown = np.isnan(r.pred)  # a series' first reading: no forecast to learn from
        if some(unknown):
            new_dev = np.where(unknown, dev, new_dev)
        shifted = stat >= cfg.cusum_h
        if some(shifted):
            pos = np.where(shifted, 0.0, pos)
            neg = np.where(shifted, 0.0, neg)
        ok = r.learn_ok
        for name, new in (("cusum_dev", new_dev), ("cusum_pos", pos), ("cusum_neg", neg)):
            put(store[name], s, ok, new, r.all_learn_ok)


class Flatline:
    """A run of identical readings, weighed by how often this series repeats a value.

    The surprise of a run of L repeats is ``L × -log10(p)`` with ``p`` the series' own
    repeat rate (a slow EWMA, so a series whose long runs are normal learns it): a
    noisy sensor is stuck after a few equal readings while a quantised one needs many.

    A value at a bound of the metric's physical range is a state, not a frozen reading:
    a fan at 0 rpm is off, a battery at 100 % is full. Such runs are not judged (a dead
    fan or sensor shows in the device rules and the limits instead).
    """

    name = "flatline"
    kind = DetectionKind.FLATLINE

    def allocate(self, store: Store, capacity: int) -> None:
        store.add("flat_rate", capacity, 0.5)
        store.add("flat_run", capacity, 0.0)

    def _run(self, r: Round, store: Store) -> FloatArray:
        if "flat" not in r.cache:
            prev = store["flat_run"].take(r.slots)
            same = r.x == r.last_x
            r.cache["flat"] = (np.where(same, prev + 1.0, 0.0), prev, same)
        run: FloatArray = r.cache["flat"][0]
        return run

    def score(self, r: Round, store: Store) -> Scores:
        cfg = r.config
        run = self._run(r, store)
        raw_rate = store["flat_rate"].take(r.slots)
        r.cache["flat_rate"] = raw_rate
        ok = run >= cfg.flatline_min_run - 1
        if some(ok):  # else no run is long enough to judge: no log10
            ok &= r.judge_ok
            ok &= r.x != r.limits[:, 5]  # NaN bounds (generic series) compare unequal
            ok &= r.x != r.limits[:, 6]
            rate = np.clip(raw_rate, 1e-3, 0.999)
            decades = run * -np.log10(rate)
            score = _squashed(cfg.z_on * decades / cfg.flatline_decades, ok, False, cfg)
        else:
            score = np.zeros(len(r))
        return Scores(score, run + 1.0, r.last_x)

    def learn(self, r: Round, store: Store) -> None:
        cfg, s = r.config, r.slots
        run = self._run(r, store)
        _, prev_run, same = r.cache.pop("flat")
        ok = r.learn_ok
        rate = r.cache.pop("flat_rate", None)
        if rate is None:
            rate = store["flat_rate"].take(s)
        new_rate = same.astype(np.float64)
        np.subtract(new_rate, rate, out=new_rate)
        np.multiply(new_rate, np.maximum(cfg.alpha_repeat, r.inv_n1), out=new_rate)
        np.add(new_rate, rate, out=new_rate)
        learn_rate = ~np.isnan(r.last_x)
        learn_rate &= ok
        store["flat_rate"][s] = np.where(learn_rate, new_rate, rate)
        if some(run) or some(prev_run):  # else every run is and stays 0
            store["flat_run"][s] = run if r.all_learn_ok else np.where(ok, run, prev_run)


class Dropout:
    """A gap longer than ``dropout_k`` expected periods, seen when the next reading
    arrives (``Detector.tick`` finds silent series without one). The period is the
    catalogue's, or for generic series a robust EWMA of the gaps seen."""

    name = "dropout"
    kind = DetectionKind.DROPOUT

    def allocate(self, store: Store, capacity: int) -> None:
        """Stateless: the core keeps last-seen times and the learned period."""

    def score(self, r: Round, store: Store) -> Scores:  # noqa: ARG002 - the API
        cfg = r.config
        period = r.expected_ms
        gap = r.dt_ms / period
        ok = ~np.isnan(gap)
        if not r.all_warm:  # a learned period needs the warm-up
            ok &= ~np.isnan(r.period_ms) | r.warm
        if not r.all_learnable:
            ok &= r.learnable
        score = _squashed(cfg.z_on * gap / cfg.dropout_k, ok, False, cfg)
        return Scores(score, gap, period)

    def learn(self, r: Round, store: Store) -> None:
        """Nothing to learn beyond the core's period."""


def build(config: DetectorConfig) -> list[SeriesDetector]:
    """The sub-detectors ``config.detectors`` names, in scoring order."""
    makers: dict[str, SeriesDetector] = {
        "limits": Limits(),
        "baseline": Baseline(),
        "time_of_day": TimeOfDay(config),
        "level_shift": LevelShift(),
        "flatline": Flatline(),
        "dropout": Dropout(),
    }
    return [makers[name] for name in config.detectors]
