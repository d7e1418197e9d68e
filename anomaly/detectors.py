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
from anomaly.context import DAY_MS, BoolArray, FloatArray, Round, Store, put
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


def _scale(
    dev: FloatArray, level: FloatArray, cfg: DetectorConfig, slow: FloatArray | None = None
) -> FloatArray:
    """Robust sigma, floored: relative to the level, and (``slow``) to a fraction of the
    long-run unclipped deviation, so a mostly-constant series with rare bursts keeps a
    finite scale instead of collapsing to zero and alarming at every burst."""
    floor = cfg.scale_floor_rel * np.abs(level) + cfg.scale_floor_abs
    if slow is not None:
        floor = np.fmax(floor, cfg.slow_floor * _MAD_TO_SIGMA * slow)
    return np.fmax(_MAD_TO_SIGMA * dev, floor)


def _gated(score: FloatArray, ok: BoolArray) -> FloatArray:
    # Scores come from ``squash`` or a table: never NaN, so one select does.
    return np.where(ok, score, 0.0)


def _robust_step(
    x: FloatArray,
    level: FloatArray,
    dev: FloatArray,
    n: FloatArray,
    *,
    alpha: float | FloatArray,
    alpha_scale: float | FloatArray,
    cfg: DetectorConfig,
    clip: BoolArray,
) -> tuple[FloatArray, FloatArray]:
    """One outlier-protected EWMA step of level and absolute deviation.

    Readings beyond ``clip_sigma`` scales are pulled to that bound before learning (where
    ``clip``), so a spike moves the baseline by a bounded amount. The first readings use
    the running mean (weight 1/(n+1)) so the start is not biased to the first value.
    """
    first = np.isnan(level)
    level = np.where(first, x, level)
    bound = np.where(clip, cfg.clip_sigma * _scale(dev, level, cfg), np.inf)
    resid = x - level
    a = np.maximum(alpha, 1.0 / (n + 1.0))
    a_s = np.maximum(alpha_scale, 1.0 / (n + 1.0))
    new_level = level + a * np.clip(resid, -bound, bound)
    new_dev = dev + a_s * (np.minimum(np.abs(resid), bound) - dev)
    return new_level, np.where(first, 0.0, new_dev)


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
    def _level(x: FloatArray, lim: FloatArray, inward: FloatArray) -> FloatArray:
        with np.errstate(invalid="ignore"):
            warn = (x < lim[:, 0] + inward) | (x >= lim[:, 1] - inward)
            crit = (x < lim[:, 2] + inward) | (x >= lim[:, 3] - inward)
        return np.where(crit, 2.0, np.where(warn, 1.0, 0.0))

    def _new_level(self, r: Round, store: Store) -> FloatArray:
        if "lim" not in r.cache:
            prev = store["lim_level"].take(r.slots)
            outer = self._level(r.x, r.limits, np.zeros(len(r)))
            inner = self._level(r.x, r.limits, r.limits[:, 4])
            new = np.maximum(outer, np.minimum(prev, inner))
            r.cache["lim"] = new if r.all_learnable else np.where(r.learnable, new, prev)
        level: FloatArray = r.cache["lim"]
        return level

    def score(self, r: Round, store: Store) -> Scores:
        level = self._new_level(r, store)
        table = np.array([0.0, r.config.limit_warn_score, 1.0])
        score = table[level.astype(np.intp)]
        return Scores(_gated(score, r.learnable), level, np.full(len(r), np.nan))

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
            scale = _scale(dev, level, r.config, slow)
            r.cache["base_dev"], r.cache["base_slow"] = dev, slow
            r.cache["base"] = ((r.x - level) / scale, level)
        z, level = r.cache["base"]
        return z, level

    def score(self, r: Round, store: Store) -> Scores:
        z, level = self._z(r, store)
        ok = r.judge_ok
        return Scores(_gated(squash(np.abs(z), r.config.z_half), ok), z, level, ok)

    def learn(self, r: Round, store: Store) -> None:
        cfg, s = r.config, r.slots
        ok = r.learn_ok
        z, level = self._z(r, store)
        warm = r.warm
        new_level, new_dev = _robust_step(
            r.x,
            level,
            r.cache["base_dev"],
            r.n,
            alpha=cfg.alpha,
            alpha_scale=cfg.alpha_scale,
            cfg=cfg,
            clip=warm,
        )
        fast_prev = store["base_fast"].take(s)
        a_fast = 2.0 / (cfg.rebaseline_run + 1.0)
        fast = np.where(np.isnan(fast_prev), r.x, fast_prev + a_fast * (r.x - fast_prev))
        with np.errstate(invalid="ignore"):
            side = np.where(warm & (np.abs(z) > cfg.clip_sigma), np.sign(z), 0.0)
        run = store["base_run"].take(s)
        run = np.where(side == 0, 0.0, np.where(np.sign(run) == side, run + side, side))
        slow_prev = r.cache["base_slow"]
        a_slow = np.maximum(cfg.alpha_slow, 1.0 / (r.n + 1.0))
        resid = np.abs(r.x - np.where(np.isnan(level), r.x, level))
        slow = slow_prev + a_slow * (resid - slow_prev)
        moved = np.abs(run) >= cfg.rebaseline_run
        new_level = np.where(moved, fast, new_level)
        run = np.where(moved, 0.0, run)
        for name, new in (
            ("base_level", new_level),
            ("base_dev", new_dev),
            ("base_fast", fast),
            ("base_run", run),
            ("base_slow", slow),
        ):
            put(store[name], s, ok, new, r.all_learn_ok)


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
        return (local * self.bins) // DAY_MS

    def _state(
        self, r: Round, store: Store
    ) -> tuple[np.ndarray, FloatArray, FloatArray, FloatArray]:
        if "tod" not in r.cache:
            # Flat indices into the raveled tables: cheaper than a 2-D fancy index.
            flat = r.slots * self.bins + self.bin_of(r.ts_ms)
            r.cache["tod"] = (
                flat,
                store["tod_level"].take(flat),
                store["tod_dev"].take(flat),
                store["tod_n"].take(flat),
            )
        flat, level, dev, count = r.cache["tod"]
        return flat, level, dev, count

    def score(self, r: Round, store: Store) -> Scores:
        cfg = r.config
        _, level, dev, count = self._state(r, store)
        slow = store["tod_slow"].take(r.slots)
        r.cache["tod_slow"] = slow
        z = (r.x - level) / _scale(dev, level, cfg, slow)
        history = r.ts_ms - r.first_ts >= cfg.tod_min_days * DAY_MS
        ok = r.judge_ok & history & (count >= cfg.tod_min_count)
        return Scores(_gated(squash(np.abs(z), cfg.z_half), ok), z, level, ok)

    def learn(self, r: Round, store: Store) -> None:
        cfg = r.config
        b, level, dev, count = self._state(r, store)
        bin_ms = DAY_MS / self.bins
        # dt >= 0 or NaN: fmin(dt, bin) is nan_to_num(dt, nan=bin) capped at a bin.
        alpha = cfg.tod_alpha * np.fmin(r.dt_ms, bin_ms) / bin_ms
        new_level, new_dev = _robust_step(
            r.x, level, dev, count, alpha=alpha, alpha_scale=alpha, cfg=cfg, clip=count >= 3
        )
        ok = r.learn_ok
        slow_prev = r.cache.get("tod_slow")
        if slow_prev is None:
            slow_prev = store["tod_slow"].take(r.slots)
        a_slow = np.maximum(cfg.alpha_slow, 1.0 / (r.n + 1.0))
        resid = np.abs(r.x - np.where(np.isnan(level), r.x, level))
        new_slow = slow_prev + a_slow * (resid - slow_prev)
        put(store["tod_slow"], r.slots, ok, new_slow, r.all_learn_ok)
        new_count = count + 1.0
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
            scale = _scale(dev, r.pred, cfg)
            resid = np.clip((r.x - r.pred) / scale, -cfg.cusum_clip, cfg.cusum_clip)
            resid = np.where(r.warm & ~np.isnan(resid), resid, 0.0)
            pos = np.maximum(0.0, store["cusum_pos"].take(r.slots) + resid - cfg.cusum_k)
            neg = np.maximum(0.0, store["cusum_neg"].take(r.slots) - resid - cfg.cusum_k)
            r.cache["cusum"] = (pos, neg, scale, dev)
        pos, neg, scale, _ = r.cache["cusum"]
        return pos, neg, scale

    def score(self, r: Round, store: Store) -> Scores:
        cfg = r.config
        pos, neg, _ = self._sums(r, store)
        stat = np.maximum(pos, neg)
        z = np.where(pos >= neg, stat, -stat) / cfg.cusum_h
        ok = r.judge_ok
        score = squash(cfg.z_on * stat / cfg.cusum_h, cfg.z_half)
        return Scores(_gated(score, ok), z, r.pred)

    def learn(self, r: Round, store: Store) -> None:
        cfg, s = r.config, r.slots
        pos, neg, scale = self._sums(r, store)
        dev = r.cache["cusum"][3]
        resid = np.abs(r.x - r.pred)
        bound = np.where(r.warm, cfg.clip_sigma * scale, np.inf)
        a = np.maximum(cfg.alpha_scale, 1.0 / (r.n + 1.0))
        new_dev = np.where(np.isnan(r.pred), dev, dev + a * (np.minimum(resid, bound) - dev))
        shifted = np.maximum(pos, neg) >= cfg.cusum_h
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
    """

    name = "flatline"
    kind = DetectionKind.FLATLINE

    def allocate(self, store: Store, capacity: int) -> None:
        store.add("flat_rate", capacity, 0.5)
        store.add("flat_run", capacity, 0.0)

    def _run(self, r: Round, store: Store) -> FloatArray:
        if "flat" not in r.cache:
            prev = store["flat_run"].take(r.slots)
            r.cache["flat"] = (np.where(r.x == r.last_x, prev + 1.0, 0.0), prev)
        run: FloatArray = r.cache["flat"][0]
        return run

    def score(self, r: Round, store: Store) -> Scores:
        cfg = r.config
        run = self._run(r, store)
        raw_rate = store["flat_rate"].take(r.slots)
        r.cache["flat_rate"] = raw_rate
        rate = np.clip(raw_rate, 1e-3, 0.999)
        decades = run * -np.log10(rate)
        long_enough = run >= cfg.flatline_min_run - 1
        score = squash(cfg.z_on * decades / cfg.flatline_decades, cfg.z_half)
        ok = r.judge_ok & long_enough
        return Scores(_gated(score, ok), run + 1.0, r.last_x)

    def learn(self, r: Round, store: Store) -> None:
        cfg, s = r.config, r.slots
        run = self._run(r, store)
        prev_run = r.cache["flat"][1]
        del r.cache["flat"]
        ok = r.learn_ok
        rate = r.cache.pop("flat_rate", None)
        if rate is None:
            rate = store["flat_rate"].take(s)
        a = np.maximum(cfg.alpha_repeat, 1.0 / (r.n + 1.0))
        same = (run > 0).astype(np.float64)
        learn_rate = ok & ~np.isnan(r.last_x)
        store["flat_rate"][s] = np.where(learn_rate, rate + a * (same - rate), rate)
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
        known = ~np.isnan(r.period_ms) | r.warm  # a learned period needs the warm-up
        score = squash(cfg.z_on * gap / cfg.dropout_k, cfg.z_half)
        return Scores(_gated(score, known & r.learnable & ~np.isnan(gap)), gap, period)

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
