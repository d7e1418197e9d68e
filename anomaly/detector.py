"""The streaming detector: state arrays per series, vectorised rounds, scores and events.

Examples
--------
>>> import numpy as np
>>> from anomaly import Detector, DetectorConfig
>>> det = Detector(DetectorConfig(warmup=10))
>>> slot = det.registry.slot("pump-7", 0)
>>> rng = np.random.default_rng(0)
>>> values = np.r_[20 + rng.normal(0, 0.5, 60), 35.0]
>>> ts = np.arange(61, dtype=np.int64) * 60_000
>>> res = det.update_arrays(np.full(61, slot), ts, values)
>>> bool(res.scores[:-1].max() < 0.5), bool(res.scores[-1] > 0.99)
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

import numpy as np
import numpy.typing as npt

from anomaly.calibrate import Calibrator
from anomaly.config import DetectorConfig
from anomaly.context import (
    BoolArray,
    FloatArray,
    IntArray,
    Round,
    Store,
    every,
    nonzero,
    put,
    some,
)
from anomaly.decide import Decider
from anomaly.detectors import Dropout, Scores, SeriesDetector, build
from anomaly.events import Detection, DetectionKind
from anomaly.registry import MAX_METRIC_ID, SeriesRegistry
from anomaly.rounds import plan_rounds
from anomaly.rules import DeviceRules
from telemetry.batch import ReadingBatch
from telemetry.catalogue import METRICS_BY_ID

CHECKPOINT_VERSION = 3  # 3: calibration min/max columns (new-extreme check)

PIECE = 16384
"""Readings per vectorised step: a whole round's temporaries would not stay in the cache."""

# Bool metrics whose alarm is a device rule (door at night, mains lost), not a limit.
_RULE_OWNED = frozenset({"door_open", "on_battery"})


@dataclass(frozen=True, slots=True)
class Update:
    """What one ``update`` returns: a score per reading (input order) and the events."""

    scores: FloatArray
    events: list[Detection]
    components: dict[str, FloatArray] = field(default_factory=dict)
    """Per sub-detector scores, when asked for (``components=True``)."""
    slots: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    onset: FloatArray = field(default_factory=lambda: np.empty(0))
    """Per reading: the calibrated onset score (anomaly/calibrate.py), high when this
    series shows evidence unusual *for it* that it has not just reported. ``scores``
    says how far from normal; ``onset`` says "a new anomaly starts here" (NAB, detect)."""


def _metric_tables(config: DetectorConfig) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Per metric id: limits (warn_low, warn_high, crit_low, crit_high, margin,
    valid_min, valid_max, off_value, sensor noise floor), catalogue period in ms (NaN:
    learn it) and whether the metric is a bool."""
    limits = np.full((MAX_METRIC_ID + 1, 9), np.nan)
    limits[:, 4] = 0.0
    period = np.full(MAX_METRIC_ID + 1, np.nan)
    is_bool = np.zeros(MAX_METRIC_ID + 1, dtype=bool)
    for mid, m in METRICS_BY_ID.items():
        period[mid] = m.period_s * 1000.0
        is_bool[mid] = m.dtype == "bool"
        limits[mid, 5:7] = m.valid_min, m.valid_max
        if m.off_value is not None:
            limits[mid, 7] = m.off_value
        if m.accuracy is not None:
            limits[mid, 8] = m.accuracy / 2.0  # a stated accuracy spans about 2 sigma
        if m.name in _RULE_OWNED:
            continue
        for col, lim in enumerate((m.warn_low, m.warn_high, m.crit_low, m.crit_high)):
            if lim is not None:
                limits[mid, col] = lim
        limits[mid, 4] = (
            0.0 if is_bool[mid] else config.limit_margin_rel * (m.valid_max - m.valid_min)
        )
    return limits, period, is_bool


class Detector:
    """All series of the city in one set of arrays.

    Feed it with :meth:`update` (a contract ``ReadingBatch``) or :meth:`update_arrays`
    (slots from :attr:`registry`, timestamps, values). Pure: time comes from the data.
    """

    def __init__(self, config: DetectorConfig | None = None, capacity: int = 1024) -> None:
        self.config = config or DetectorConfig()
        self.registry = SeriesRegistry(capacity)
        self.store = Store()
        self.components: list[SeriesDetector] = build(self.config)
        self._limits, self._period, self._is_bool = _metric_tables(self.config)
        self._is_stat = ~self._is_bool
        cap = self.registry.capacity
        for name, fill in (
            ("n", 0.0),
            ("last_x", np.nan),
            ("last_ts", np.nan),
            ("since_ts", np.nan),
            ("first_ts", np.nan),
            ("hlevel", np.nan),
            ("trend", 0.0),
            ("last_score", 0.0),
            ("period", np.nan),
        ):
            self.store.add(f"core_{name}", cap, fill)
        for comp in self.components:
            comp.allocate(self.store, cap)
        self.decider = Decider(self.config, self.components, self.registry)
        self.decider.allocate(self.store, cap)
        self.calibrator = Calibrator(self.config, self.components)
        self.calibrator.allocate(self.store, cap)
        self.rules = DeviceRules(self.config, self.registry)

    # ----------------------------------------------------------------- feeding
    def update(self, batch: ReadingBatch, *, components: bool = False) -> Update:
        """Score a contract batch (registering new series) and decide events."""
        slots = self.registry.slots(batch.device, batch.metric, batch.ward)
        return self.update_arrays(slots, batch.ts_ms, batch.value, components=components)

    def update_arrays(
        self,
        slots: npt.ArrayLike,
        ts_ms: npt.ArrayLike,
        values: npt.ArrayLike,
        *,
        components: bool = False,
    ) -> Update:
        """Score readings given as columns; ``slots`` come from :attr:`registry`.

        Readings may be in any order and hold several of one series: the result equals
        feeding them one at a time in time order (ties: input order).
        """
        slot_arr = np.asarray(slots, dtype=np.int64)
        ts_arr = np.asarray(ts_ms, dtype=np.int64)
        x_arr = np.asarray(values, dtype=np.float64)
        if not slot_arr.shape == ts_arr.shape == x_arr.shape or slot_arr.ndim != 1:
            raise ValueError("slots, ts_ms and values must be 1-D arrays of one length")
        if slot_arr.size and (slot_arr.min() < 0 or slot_arr.max() >= self.registry.size):
            raise ValueError("slot not registered; get slots from detector.registry")
        self._sync_capacity()
        n = len(x_arr)
        scores = np.zeros(n)
        onset = np.zeros(n)
        parts = {c.name: np.zeros(n) for c in self.components} if components else {}
        events: list[Detection] = []
        for idx in plan_rounds(slot_arr, ts_arr):
            # A round in pieces: every reading of a round is independent of the others,
            # and a piece's temporaries stay in the cache where a whole round's would not.
            grouped: list[tuple[int, Detection]] = []
            for start in range(0, len(idx), PIECE):
                piece = idx[start : start + PIECE]
                r = self._round(slot_arr.take(piece), ts_arr.take(piece), x_arr.take(piece))
                results = [c.score(r, self.store) for c in self.components]
                combined = self._combine(results, len(r))
                scores[piece] = combined
                onset[piece] = self.calibrator.step(r, results, self.store)
                if components:
                    for c, res in zip(self.components, results, strict=True):
                        parts[c.name][piece] = res.score
                grouped.extend(self.decider.step(r, results, self.store, combined))
                for c in self.components:
                    c.learn(r, self.store)
                self._learn_core(r, combined)
            if len(idx) > PIECE:  # the events of a round in the order of a whole one
                grouped.sort(key=itemgetter(0))
            events.extend(event for _, event in grouped)
        if n:
            events.extend(self.rules.evaluate(self.store, slot_arr, int(ts_arr.max())))
        return Update(scores, events, parts, slot_arr, onset)

    @staticmethod
    def _combine(results: Sequence[Scores], n: int) -> FloatArray:
        if not results:
            return np.zeros(n)
        combined = results[0].score.copy()
        for res in results[1:]:
            np.maximum(combined, res.score, out=combined)
        return combined

    def _sync_capacity(self) -> None:
        cap = self.registry.capacity
        self.store.grow(cap)

    def _round(self, slots: IntArray, ts: IntArray, x: FloatArray) -> Round:
        # ``take`` rather than fancy indexing: the same gather at a fraction of the cost.
        st = self.store
        metric = self.registry.metric.take(slots)
        n = st["core_n"].take(slots)
        finite = np.isfinite(x)
        statistical = self._is_stat.take(metric)
        period = self._period.take(metric)
        learned = st["core_period"].take(slots)
        unknown = np.isnan(period)
        expected = np.where(unknown, learned, period) if some(unknown) else period
        last_ts = st["core_last_ts"].take(slots)
        dt_ms = np.subtract(ts, last_ts)
        np.maximum(dt_ms, 0.0, out=dt_ms)
        pred = dt_ms / 3_600_000.0  # hours; then level + trend * hours, in place
        trend = st["core_trend"].take(slots)
        hlevel = st["core_hlevel"].take(slots)
        np.multiply(pred, trend, out=pred)
        np.add(pred, hlevel, out=pred)
        limits = self._limits.take(metric, axis=0)
        learn_ok = finite & statistical
        # Equipment switched off by design (a fan its controller stopped for the cool
        # night) reads its off value: a state, not a level. The statistical detectors
        # neither judge nor learn it, so the baseline keeps the running level for when it
        # starts again; a fan that should run but does not is a device rule's to say.
        off = x == limits[:, 7]  # NaN (no off value) never compares equal
        any_off = some(off)
        if any_off:
            learn_ok &= ~off
        warm = n >= self.config.warmup
        judge_ok = warm & learn_ok
        all_learnable = every(finite)
        inv_n1 = n + 1.0
        np.divide(1.0, inv_n1, out=inv_n1)
        return Round(
            config=self.config,
            slots=slots,
            ts_ms=ts,
            x=x if all_learnable else np.where(finite, x, np.nan),  # inf would warn
            learnable=finite,
            statistical=statistical,
            n=n,
            warm=warm,
            last_x=st["core_last_x"].take(slots),
            last_ts=last_ts,
            since_ts=st["core_since_ts"].take(slots),
            first_ts=st["core_first_ts"].take(slots),
            period_ms=period,
            expected_ms=expected,
            pred=pred,
            limits=limits,
            dt_ms=dt_ms,
            learn_ok=learn_ok,
            all_learnable=all_learnable,
            all_learn_ok=all_learnable and not any_off and every(statistical),
            judge_ok=judge_ok,
            all_warm=every(warm),
            all_judge_ok=every(judge_ok),
            inv_n1=inv_n1,
            hlevel=hlevel,
            trend=trend,
            learned_ms=learned,
        )

    def _learn_core(self, r: Round, combined: FloatArray) -> None:
        st, s, ok = self.store, r.slots, r.learnable
        first = np.isnan(r.last_ts)
        any_first = bool(some(first))
        # Holt's linear trend with time constants in expected periods: a smooth slope per
        # hour for the rules and a trend-following forecast for the level-shift CUSUM.
        cfg = self.config
        dt = r.dt_ms
        # dt is >= 0 or NaN (a first reading): fmax(., 0) is nan_to_num without its passes.
        dt_h = dt / 3_600_000.0
        np.fmax(dt_h, 0.0, out=dt_h)
        level, trend = r.hlevel, r.trend
        no_unit = np.isnan(r.expected_ms)
        unit = np.where(no_unit, dt, r.expected_ms) if some(no_unit) else r.expected_ms
        neg_dt = np.negative(dt)
        with np.errstate(invalid="ignore", divide="ignore"):
            # a = 1 - exp(-dt / (periods * unit)), b likewise, in place.
            a = unit * cfg.trend_level_periods
            np.divide(neg_dt, a, out=a)
            np.exp(a, out=a)
            np.subtract(1.0, a, out=a)
            b = unit * cfg.trend_periods
            np.divide(neg_dt, b, out=b)
            np.exp(b, out=b)
            np.subtract(1.0, b, out=b)
        # a, b are in [0, 1] or NaN: NaN -> 1 (a) and 0 (b), as nan_to_num would.
        np.fmin(a, 1.0, out=a)
        np.fmax(b, 0.0, out=b)
        pred = r.pred
        new_level = np.subtract(r.x, pred)
        np.multiply(new_level, a, out=new_level)
        np.add(new_level, pred, out=new_level)
        if any_first:
            new_level = np.where(first, r.x, new_level)
        with np.errstate(invalid="ignore", divide="ignore"):
            step = new_level - level
            np.divide(step, dt_h, out=step)
        moving = dt_h > 0
        if not every(moving):
            step = np.where(moving, step, trend)
        np.subtract(step, trend, out=step)
        np.multiply(step, b, out=step)
        new_trend = np.add(trend, step, out=step)
        if any_first:
            new_trend[first] = 0.0
        changed = r.x != r.last_x
        # The period a generic series reports at: robust EWMA of its gaps. (fmin: a gap
        # is capped at 3 learned periods, uncapped while none is learned.)
        learned = r.learned_ms
        gap = np.fmin(dt, 3.0 * learned)
        np.subtract(gap, learned, out=gap)
        a_p = np.maximum(r.n, 1.0)
        np.divide(1.0, a_p, out=a_p)
        np.maximum(cfg.alpha_period, a_p, out=a_p)
        np.multiply(gap, a_p, out=gap)
        new_period = np.add(learned, gap, out=gap)
        no_period = np.isnan(learned)
        if some(no_period):
            new_period = np.where(no_period, dt, new_period)
        # Only a positive gap tells the period: a first reading has none (NaN) and a
        # repeated timestamp (0) would pin the period at 0, where every later gap is
        # capped to 0 and every reading is an infinite dropout.
        informative = dt > 0
        if not every(informative):
            new_period = np.where(informative, new_period, learned)
        # The warm-up counts what the statistical detectors learned: a fan off since the
        # series began (not learned) has no baseline to judge from yet.
        put(st["core_n"], s, r.learn_ok, r.n + 1.0, r.all_learn_ok)
        updates = {
            "core_last_x": r.x,
            "core_last_ts": np.fmax(r.last_ts, r.ts_ms),
            "core_since_ts": np.where(changed, r.ts_ms, r.since_ts),
            "core_period": new_period,
            "core_last_score": combined,
        }
        if any_first:  # else every first time is known and stays
            updates["core_first_ts"] = np.where(first, r.ts_ms, r.first_ts)
        for name, new in updates.items():
            put(st[name], s, ok, new, r.all_learnable)
        # The forecast follows what the statistical detectors learn: a fan its controller
        # stopped overnight restarts against its running level, not a forecast of zeros.
        for name, new in (("core_hlevel", new_level), ("core_trend", new_trend)):
            put(st[name], s, r.learn_ok, new, r.all_learn_ok)

    # ----------------------------------------------------------------- silence
    def tick(self, now_ms: int) -> list[Detection]:
        """Dropout events for series silent longer than ``dropout_k`` expected periods.

        Scans every series' last-seen time at once; the event ends when a reading comes.
        """
        k = next((i for i, c in enumerate(self.components) if isinstance(c, Dropout)), None)
        size = self.registry.size
        if k is None or size == 0:
            return []
        st = self.store
        last = st["core_last_ts"][:size]
        period = self._period[self.registry.metric[:size]]
        period = np.where(np.isnan(period), st["core_period"][:size], period)
        with np.errstate(invalid="ignore"):
            silent = (now_ms - last) > self.config.dropout_k * period
        silent &= st["ev_active"][:size, k] == 0
        events: list[Detection] = []
        for slot in nonzero(silent):
            slots = np.array([slot], dtype=np.int64)
            r = self._round(slots, np.array([now_ms], np.int64), st["core_last_x"][slots])
            gap = (now_ms - last[slot]) / period[slot]
            res = Scores(np.array([1.0]), np.array([gap]), np.array([period[slot]]))
            det = self.decider
            ev = det.event(
                DetectionKind.DROPOUT, r, res, 0, active=True, start=float(last[slot]), peak=1.0
            )
            st["ev_active"][slot, k] = 1.0
            st["ev_start"][slot, k] = last[slot]
            events.append(ev)
        return events

    # ------------------------------------------------------------- checkpoint
    def bytes_per_series(self) -> float:
        """State bytes per series: every per-slot array plus the registry entry."""
        return float(self.store.bytes_per_slot()) + self.registry.bytes_per_series()

    def save(self, path: str | Path) -> None:
        """Checkpoint all learned state (``.npz``) so a restart keeps its baselines."""
        n = self.registry.size
        arrays: dict[str, npt.NDArray[np.generic]] = {
            f"state_{k}": v for k, v in self.store.snapshot(n).items()
        }
        arrays.update(self.registry.to_arrays())
        arrays.update(self.rules.to_arrays())
        arrays["meta_version"] = np.array(CHECKPOINT_VERSION)
        arrays["meta_config"] = np.array(self.config.to_json())
        with Path(path).open("wb") as f:
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | Path, config: DetectorConfig | None = None) -> Detector:
        """Restore a checkpoint; ``config`` defaults to the one stored in it."""
        with np.load(Path(path), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        version = int(arrays.get("meta_version", np.array(-1)))
        if version != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {version}, expected {CHECKPOINT_VERSION}")
        cfg = config or DetectorConfig.from_json(str(arrays["meta_config"]))
        registry = SeriesRegistry.from_arrays(arrays)
        det = cls(cfg, capacity=registry.capacity)
        det.registry = registry
        det.decider.registry = registry
        det.rules.registry = registry
        det._sync_capacity()
        det.store.load({k[6:]: v for k, v in arrays.items() if k.startswith("state_")})
        det.rules.load(arrays)
        return det
