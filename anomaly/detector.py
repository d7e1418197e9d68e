"""The streaming detector: a state row per series, one compiled kernel, scores and events.

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

import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from anomaly import delta, kernel, npz, rule_conditions
from anomaly.config import SUB_DETECTORS, DetectorConfig
from anomaly.decide import COMPONENT_KINDS, SlotFacts, series_event, slot_facts
from anomaly.events import Detection, DetectionKind
from anomaly.layout import (
    DROPOUT,
    EV_ACTIVE,
    EV_START,
    LAST_TS,
    LAST_X,
    M_COLUMNS,
    M_CRIT_HIGH,
    M_CRIT_LOW,
    M_MARGIN,
    M_OFF,
    M_PERIOD,
    M_SENSOR,
    M_STAT,
    M_VALID_MAX,
    M_VALID_MIN,
    M_WARN_HIGH,
    M_WARN_LOW,
    PERIOD,
    SINCE_TS,
    K,
)
from anomaly.registry import MAX_METRIC_ID, SeriesRegistry
from anomaly.rules import DeviceRules
from anomaly.state import State
from telemetry.batch import ReadingBatch
from telemetry.catalogue import METRICS_BY_ID

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CHECKPOINT_VERSION = 5  # 5: the routine excursion columns (4: the compiled kernel's tables)

# Bool metrics whose alarm is a device rule (door at night, mains lost), not a limit.
_RULE_OWNED = frozenset({"door_open", "on_battery"})
_HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Update:
    """What one ``update`` returns: a score per reading (input order) and the events."""

    scores: FloatArray
    events: list[Detection]
    components: dict[str, FloatArray] = field(default_factory=dict)
    """Per sub-detector scores, when asked for (``components=True``)."""
    slots: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    onset: FloatArray = field(default_factory=lambda: np.empty(0))
    """Per reading: the onset score, high when this series shows evidence unusual *for
    it* that it has not just reported. ``scores`` says how far from normal; ``onset``
    says "a new anomaly starts here" (NAB, ``citywatch detect``)."""


def metric_table(config: DetectorConfig) -> FloatArray:
    """Per metric id, the catalogue's physics as the kernel reads it (``layout.M_*``)."""
    tab = np.full((MAX_METRIC_ID + 1, M_COLUMNS), np.nan)
    tab[:, M_MARGIN] = 0.0
    tab[:, M_STAT] = 1.0  # generic series: statistical, period learned
    for mid, m in METRICS_BY_ID.items():
        is_bool = m.dtype == "bool"
        tab[mid, M_PERIOD] = m.period_s * 1000.0
        tab[mid, M_STAT] = 0.0 if is_bool else 1.0
        tab[mid, M_VALID_MIN], tab[mid, M_VALID_MAX] = m.valid_min, m.valid_max
        if m.off_value is not None:
            tab[mid, M_OFF] = m.off_value
        if m.accuracy is not None:
            tab[mid, M_SENSOR] = m.accuracy / 2.0  # a stated accuracy spans about 2 sigma
        if m.name in _RULE_OWNED:
            continue
        limits = (m.warn_low, m.warn_high, m.crit_low, m.crit_high)
        for col, lim in zip(
            (M_WARN_LOW, M_WARN_HIGH, M_CRIT_LOW, M_CRIT_HIGH), limits, strict=True
        ):
            if lim is not None:
                tab[mid, col] = lim
        tab[mid, M_MARGIN] = (
            0.0 if is_bool else config.limit_margin_rel * (m.valid_max - m.valid_min)
        )
    return tab


def kernel_params(config: DetectorConfig) -> kernel.Params:
    """The configuration as the kernel reads it."""
    c = config
    flags = tuple(name in c.detectors for name in SUB_DETECTORS)
    feeds = tuple(name in c.onset_from for name in SUB_DETECTORS)
    return kernel.Params(
        warmup=float(c.warmup),
        alpha=c.alpha,
        alpha_scale=c.alpha_scale,
        clip_sigma=c.clip_sigma,
        rebaseline_run=float(c.rebaseline_run),
        scale_floor_rel=c.scale_floor_rel,
        scale_floor_abs=c.scale_floor_abs,
        alpha_slow=c.alpha_slow,
        slow_floor=c.slow_floor,
        tod_bins=float(c.tod_bins),
        tod_alpha=c.tod_alpha,
        tod_min_days=c.tod_min_days,
        tod_min_count=float(c.tod_min_count),
        utc_offset_ms=float(round(c.utc_offset_h * 3_600_000)),
        cusum_k=c.cusum_k,
        cusum_h=c.cusum_h,
        cusum_clip=c.cusum_clip,
        flatline_min_run=float(c.flatline_min_run),
        flatline_decades=c.flatline_decades,
        alpha_repeat=c.alpha_repeat,
        dropout_k=c.dropout_k,
        alpha_period=c.alpha_period,
        z_half=c.z_half,
        z_on=c.z_on,
        score_on=c.score_on,
        score_off=c.score_off,
        limit_warn_score=c.limit_warn_score,
        onset_short_alpha=c.onset_short_alpha,
        onset_long_alpha=c.onset_long_alpha,
        onset_min_sd=c.onset_min_sd,
        onset_min_history=float(c.onset_min_history),
        onset_decay=0.5 ** (1.0 / c.onset_half_life),
        onset_half=c.onset_half,
        report_min=c.onset_report_min,
        escalate=c.onset_escalate,
        refractory=float(c.onset_refractory),
        refractory_escalate=c.onset_refractory_escalate,
        record_alpha=1.0 / c.onset_record_memory,
        excursion_tolerance=c.onset_excursion_tolerance,
        extreme_tolerance=c.onset_extreme_tolerance,
        extreme_decades=c.onset_extreme_decades,
        coarse_blocks=(float(c.coarse_blocks[0]), float(c.coarse_blocks[1])),
        coarse_alpha=tuple(  # type: ignore[arg-type]
            b / max(c.coarse_memory, 16.0 * b)  # coarse_memory readings, >= 16 blocks
            for b in c.coarse_blocks
        ),
        coarse_tolerance=c.coarse_extreme_tolerance,
        coarse_min_blocks=float(c.coarse_min_blocks),
        coarse_min_history=float(c.coarse_min_history),
        coarse_dispersion=c.coarse_dispersion,
        trend_level_periods=c.trend_level_periods,
        trend_periods=c.trend_periods,
        hold_ms=float(c.baseline_hold_ms),
        holt_a=1.0 - math.exp(-1.0 / c.trend_level_periods),
        holt_b=1.0 - math.exp(-1.0 / c.trend_periods),
        exact_until=max(1.0 / a for a in (c.alpha, c.alpha_scale, c.alpha_slow, c.alpha_repeat)),
        shift_gain=c.z_on / c.cusum_h,
        flat_gain=c.z_on / c.flatline_decades,
        drop_gain=c.z_on / c.dropout_k,
        fast_alpha=2.0 / (c.rebaseline_run + 1.0),
        tod_alpha_per_ms=c.tod_alpha * c.tod_bins / 86_400_000,
        enabled=flags,  # type: ignore[arg-type]
        onset_from=feeds,  # type: ignore[arg-type]
    )


@dataclass(frozen=True, slots=True)
class KernelReady:
    """What :func:`prepare_kernel` did."""

    seconds: float
    compiled: bool
    """True: compiled now (first run with this environment); False: loaded from cache."""
    cache_dir: str


def prepare_kernel() -> KernelReady:
    """Compile the kernel, or load it from its on-disk cache, before the first batch
    (a first compile takes tens of seconds; loading it, a few)."""
    started = time.perf_counter()
    det = Detector(capacity=1)
    slot = det.registry.slot("warm-up", 0)
    det.update_arrays([slot, slot], [0, 60_000], [1.0, 2.0])
    compiled = (kernel.group, kernel.score_batch, rule_conditions._rules_pass)
    misses = sum(sum(fn.stats.cache_misses.values()) for fn in compiled)
    return KernelReady(time.perf_counter() - started, misses > 0, kernel.cache_dir())


class Detector:
    """All series of the city in one set of state tables.

    Feed it with :meth:`update` (a contract ``ReadingBatch``) or :meth:`update_arrays`
    (slots from :attr:`registry`, timestamps, values). Pure: time comes from the data.
    """

    def __init__(self, config: DetectorConfig | None = None, capacity: int = 1024) -> None:
        self.config = config or DetectorConfig()
        self.registry = SeriesRegistry(capacity)
        self.state = State(self.registry.capacity, self.config.tod_bins)
        self._mtab = metric_table(self.config)
        self._work = kernel.Workspace()
        self._params = kernel_params(self.config)
        self._switches = kernel.switches_of(self._params)
        self._names = [name for name in SUB_DETECTORS if name in self.config.detectors]
        self.rules = DeviceRules(self.config, self.registry)
        self.dirty = delta.Dirty(self.registry)
        """What changed since the last checkpoint (:meth:`delta_bytes`)."""

    @property
    def store(self) -> State:
        """The state tables (columns by name); kept under its old name for readers."""
        return self.state

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
        slot_arr = np.ascontiguousarray(slots, dtype=np.int64)
        ts_arr = np.ascontiguousarray(ts_ms, dtype=np.int64)
        x_arr = np.ascontiguousarray(values, dtype=np.float64)
        if not slot_arr.shape == ts_arr.shape == x_arr.shape or slot_arr.ndim != 1:
            raise ValueError("slots, ts_ms and values must be 1-D arrays of one length")
        n = len(x_arr)
        self.state.grow(self.registry.capacity)
        out = np.empty((n, 2))  # the kernel writes a row's two scores side by side
        scores = out[:, 0]
        onset = out[:, 1]
        comps = np.zeros((K, n) if components else (K, 0))
        if not n:
            return Update(scores, [], {}, slot_arr, onset)
        rows, origin, seg, slots_of = self._work.fit(n)
        rows, origin, starts, series = kernel.group(
            slot_arr, ts_arr, x_arr, self.registry.size, rows, origin, seg, slots_of
        )
        records = kernel.score_batch(
            rows,
            origin,
            self.registry.metric,
            self._mtab,
            self.state.f64,
            self.state.f32,
            self.state.tod,
            self._params,
            out,
            comps,
            components,
            starts,
            series,
            self._switches,
        )
        self.dirty.mark(series, self.registry.capacity)  # each series of the batch once
        if len(records):  # the kernel's reading index is the grouped row's
            records[:, 0] = origin[records[:, 0].astype(np.int64)]
        events = self._events(records, slot_arr, ts_arr, x_arr)
        events.extend(self.rules.evaluate(self.state, series, int(ts_arr.max())))
        parts = {}
        if components:
            parts = {name: comps[SUB_DETECTORS.index(name)] for name in self._names}
        return Update(scores, events, parts, slot_arr, onset)

    def _events(
        self, records: FloatArray, slots: IntArray, ts: IntArray, x: FloatArray
    ) -> list[Detection]:
        """Detections of the kernel's transition records, in time order (then input
        order, component order, start before end)."""
        if not len(records):
            return []
        at = records[:, 0].astype(np.int64)
        order = np.lexsort((np.arange(len(records)), records[:, 1], at, ts.take(at)))
        rows = records[order]
        at = at[order]
        # Python lists, not numpy rows: an element read from an array costs a boxing call.
        values = x.take(at)
        values[~np.isfinite(values)] = np.nan
        event_ts = ts.take(at)
        out = []
        facts: dict[int, SlotFacts] = {}
        for (_, k, active, start, peak, z, ref, since), slot, t, hour, value in zip(
            rows.tolist(),
            slots.take(at).tolist(),
            event_ts.tolist(),
            self._hours(event_ts).tolist(),
            values.tolist(),
            strict=True,
        ):
            known = facts.get(slot)
            if known is None:
                known = facts[slot] = self._facts(slot)
            kind = COMPONENT_KINDS[int(k)]
            out.append(
                series_event(kind, known, t, hour, value, z, ref, since, active > 0, start, peak)
            )
        return out

    def _facts(self, slot: int) -> SlotFacts:
        """What an event says of ``slot`` (its device, ward, metric and limits)."""
        return slot_facts(self.registry, slot, self._mtab[self.registry.metric[slot]].tolist())

    def _hours(self, ts_ms: IntArray) -> IntArray:
        """The local hour of day of each time."""
        offset = round(self.config.utc_offset_h * _HOUR_MS)
        return ((ts_ms + offset) // _HOUR_MS) % 24

    # ----------------------------------------------------------------- silence
    def tick(self, now_ms: int) -> list[Detection]:
        """Dropout events for series silent longer than ``dropout_k`` expected periods.

        Scans every series' last-seen time at once; the event ends when a reading comes.
        """
        size = self.registry.size
        if "dropout" not in self.config.detectors or size == 0:
            return []
        f64, f32 = self.state.f64[:size], self.state.f32[:size]
        last = f64[:, LAST_TS]
        period = self._mtab[self.registry.metric[:size], M_PERIOD]
        period = np.where(np.isnan(period), f64[:, PERIOD], period)
        with np.errstate(invalid="ignore"):
            silent = (now_ms - last) > self.config.dropout_k * period
        silent &= f32[:, EV_ACTIVE + DROPOUT] == 0
        events: list[Detection] = []
        raised = np.flatnonzero(silent)
        self.dirty.mark(raised, self.registry.capacity)
        for slot in raised.tolist():
            gap = (now_ms - last[slot]) / period[slot]
            events.append(
                series_event(
                    DetectionKind.DROPOUT,
                    self._facts(slot),
                    now_ms,
                    int(self._hours(np.array([now_ms]))[0]),
                    float(f64[slot, LAST_X]),
                    float(gap),
                    float(period[slot]),
                    float(now_ms - f64[slot, SINCE_TS]),
                    True,
                    float(last[slot]),
                    1.0,
                )
            )
            self.state.f32[slot, EV_ACTIVE + DROPOUT] = 1.0
            self.state.f64[slot, EV_START + DROPOUT] = last[slot]
        return events

    # ------------------------------------------------------------- checkpoint
    def bytes_per_series(self) -> float:
        """State bytes per series: every state table's row plus the registry entry."""
        return float(self.state.bytes_per_slot()) + self.registry.bytes_per_series()

    def save(self, path: str | Path) -> None:
        """Checkpoint all learned state (``.npz``) so a restart keeps its baselines."""
        with Path(path).open("wb") as f:
            self._write(f)

    def to_bytes(self) -> bytes:
        """The checkpoint :meth:`save` writes, as bytes (for a database row)."""
        out = io.BytesIO()
        self._write(out)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, config: DetectorConfig | None = None) -> Detector:
        """Restore :meth:`to_bytes`'s checkpoint (see :meth:`load`)."""
        return cls._read(io.BytesIO(data), "(bytes)", config)

    def delta_bytes(self) -> bytes:
        """What changed since the last checkpoint (:meth:`to_bytes`, or a delta) that
        :meth:`checkpoint_saved` was told of: :meth:`apply_delta` on that checkpoint gives
        this detector (``anomaly.delta``)."""
        return delta.to_bytes(self)

    def apply_delta(self, data: bytes) -> None:
        """Bring this detector (the checkpoint a delta follows) to the delta's state."""
        delta.apply(self, data)

    def checkpoint_saved(self) -> None:
        """The last :meth:`to_bytes` or :meth:`delta_bytes` is saved: the next delta
        starts from here."""
        self.dirty.clear(self.registry)

    def _write(self, f: BinaryIO) -> None:
        n = self.registry.size
        arrays: dict[str, npt.NDArray[np.generic]] = {
            f"state_{k}": v for k, v in self.state.snapshot(n).items()
        }
        arrays.update(self.registry.to_arrays())
        arrays.update(self.rules.to_arrays())
        arrays["meta_version"] = np.array(CHECKPOINT_VERSION)
        arrays["meta_config"] = np.array(self.config.to_json())
        npz.write(f, arrays)

    @classmethod
    def load(cls, path: str | Path, config: DetectorConfig | None = None) -> Detector:
        """Restore a checkpoint; ``config`` defaults to the one stored in it."""
        with Path(path).open("rb") as f:
            return cls._read(f, str(path), config)

    @classmethod
    def _read(cls, f: BinaryIO, path: str, config: DetectorConfig | None) -> Detector:
        arrays = npz.read(f)
        version = int(arrays.get("meta_version", np.array(-1)))
        if version != CHECKPOINT_VERSION:
            raise ValueError(
                f"checkpoint {path} is version {version}, this detector reads version "
                f"{CHECKPOINT_VERSION}: its baselines cannot be carried over; delete it and "
                "every series re-learns its baseline (the warm-up) from its next readings"
            )
        cfg = config or DetectorConfig.from_json(str(arrays["meta_config"]))
        registry = SeriesRegistry.from_arrays(arrays)
        det = cls(cfg, capacity=registry.capacity)
        det.registry = registry
        det.rules.registry = registry
        det.state.grow(registry.capacity)
        det.state.load({k[6:]: v for k, v in arrays.items() if k.startswith("state_")})
        det.rules.load(arrays)
        det.dirty = delta.Dirty(registry)
        return det
