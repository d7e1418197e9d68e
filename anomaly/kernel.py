"""The detector's per-reading work: one kernel compiled with numba.

``score_batch`` walks a batch grouped by series (``group``), ``LANES`` series side by
side (``anomaly/lanes.py``), and for each reading runs every sub-detector, the onset
calibration and the event decisions against the series' state (``anomaly/layout.py``),
held in the lane buffer while the series' readings go by. The same source runs
interpreted under ``NUMBA_DISABLE_JIT=1``; the tests use that as the reference, so it
keeps to what both agree on: float64 scalars (float32 state is rounded with ``r32``
where it is stored), no division by zero, no ``min``/``max`` on NaN (``_fmin``/``_fmax``
have numpy's NaN rules), ``math`` functions inside their domains.

Why compiled: the detector is a state machine per series. Vectorised numpy rounds had
to move every state column of every series through memory once per sub-step, which
capped them at ~4.7 M readings/s before any arithmetic; here a reading costs its
arithmetic and the cache lines of its series.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numba
import numpy as np
import numpy.typing as npt

from anomaly.lanemath import ln, ln6, r32, sqrt
from anomaly.lanes import (
    BLIP,
    COLUMNS,
    ENDS,
    IN_BIN,
    IN_GAP,
    IN_LA,
    IN_LB,
    IN_T,
    IN_TOD,
    IN_X,
    LANES,
    MET,
    OUT_BAR,
    OUT_BLOCK,
    OUT_BLOCK_STEPS,
    OUT_BLOCK_SUM,
    OUT_DROP_START,
    OUT_EVENT,
    OUT_EVENTS,
    OUT_EVIDENCE,
    OUT_LEARNABLE,
    OUT_ONSET,
    OUT_RARE,
    OUT_REF,
    OUT_REFS,
    OUT_SC,
    OUT_SCORE,
    OUT_SINCE,
    OUT_SINCE_MS,
    OUT_TAIL,
    OUT_TAIL_VAR,
    OUT_WARM,
    OUT_Z,
    S32,
    S64,
    STARTS,
)
from anomaly.layout import (
    BASE_DEV,
    BASE_FAST,
    BASE_LEVEL,
    BASE_RUN,
    BASE_SLOW,
    BASELINE,
    CAL,
    CAL_BASELINE,
    CAL_COARSE,
    CAL_SHIFT,
    CAL_TOD,
    CAL_WIDTH,
    CB_BLOCKS,
    CB_COUNT,
    CB_DEV,
    CB_DMAX,
    CB_DMIN,
    CB_DSUM,
    CB_LEVEL,
    CB_MAX,
    CB_MIN,
    CB_SUM,
    COARSE,
    COARSE_SCALES,
    COARSE_WIDTH,
    CUSUM_DEV,
    CUSUM_NEG,
    CUSUM_POS,
    DROPOUT,
    EV_ACTIVE,
    EV_PEAK,
    EV_START,
    EXC_NEG,
    EXC_POS,
    F32_COLUMNS,
    F64_COLUMNS,
    FIRST_TS,
    FLAT_RATE,
    FLAT_RUN,
    FLATLINE,
    HLEVEL,
    HOLD_REF,
    HOLD_SCALE,
    HOLD_TS,
    LAST_SCORE,
    LAST_TS,
    LAST_X,
    LEVEL_SHIFT,
    LIM_LEVEL,
    LIMITS,
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
    RANGE_MAX,
    RANGE_MIN,
    REPORT_REF,
    REPORTED,
    RUN_LEVEL,
    SINCE_REPORT,
    SINCE_TS,
    TIME_OF_DAY,
    TOD_SLOW,
    TOD_WIDTH,
    TREND,
    K,
    N,
)
from anomaly.prefetch import (
    prefetch_for_write,
    prefetch_item,
    prefetch_item_for_write,
    prefetch_row,
)
from anomaly.prefetch import unsigned as _u

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
OriginArray = npt.NDArray[np.int32]

PREFETCH_AHEAD = 4
"""How many series ahead of the lanes the readings and state of a series are prefetched."""

EVENT_FIELDS = 8
"""An event record: reading index, component, active (1/0), start ms, peak score, z,
reference, ms since the value began."""

JIT_DISABLED = bool(numba.config.DISABLE_JIT)  # type: ignore[attr-defined]

MAD_TO_SIGMA = 1.2533  # mean absolute deviation -> standard deviation (normal noise)
DAY_MS = 86_400_000  # int: the hour-of-day bin divides by a constant, not by a variable
HOUR_MS = 3_600_000.0
_PER_HOUR = 1.0 / HOUR_MS  # a multiplication where a division would cost four times it
_LN10 = math.log(10.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_INV_LN2 = 1.0 / math.log(2.0)
_INV_LN10 = 1.0 / _LN10
_EXCURSION_RISE = 0.5
"""How far a larger excursion lifts a series' routine excursion size (EXC_POS/NEG)
towards it: halfway, so a size is routine once it has come back, not after one spike."""


def _sources_digest() -> str:
    """A digest of the sources the compiled code depends on. numba checks only the
    timestamp of the file that defines a function, while the kernel bakes in the column
    numbers of ``layout.py`` (and inlines ``prefetch.py``): keyed by all, a changed layout
    compiles afresh instead of running stale code."""
    digest = hashlib.sha256()
    for name in ("kernel.py", "layout.py", "lanes.py", "lanemath.py", "prefetch.py"):
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:16]


# Compiled code goes under the virtual environment (or NUMBA_CACHE_DIR), so an
# environment compiles the kernel once, not every process (numba's default is beside the
# source), in a folder of its own for each version of the sources.
numba.config.CACHE_DIR = str(  # type: ignore[attr-defined]
    Path(os.environ.get("NUMBA_CACHE_DIR") or Path(sys.prefix) / "var" / "citywatch-numba")
    / _sources_digest()
)


def cache_dir() -> str:
    """Where the compiled kernel is cached (``NUMBA_CACHE_DIR`` overrides it)."""
    return str(numba.config.CACHE_DIR)  # type: ignore[attr-defined]


jit = numba.njit(cache=True, nogil=True, error_model="numpy")
inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
"""For the helpers of the per-reading loop: inlined into it, so passing a state table
costs no reference counting (an atomic operation per call)."""


class Params(NamedTuple):
    """The configuration as the kernel reads it (``DetectorConfig.kernel_params``)."""

    warmup: float
    alpha: float
    alpha_scale: float
    clip_sigma: float
    rebaseline_run: float
    scale_floor_rel: float
    scale_floor_abs: float
    alpha_slow: float
    slow_floor: float
    tod_bins: float
    tod_alpha: float
    tod_min_days: float
    tod_min_count: float
    utc_offset_ms: float
    cusum_k: float
    cusum_h: float
    cusum_clip: float
    flatline_min_run: float
    flatline_decades: float
    alpha_repeat: float
    dropout_k: float
    alpha_period: float
    z_half: float
    z_on: float
    score_on: float
    score_off: float
    limit_warn_score: float
    onset_short_alpha: float
    onset_long_alpha: float
    onset_min_sd: float
    onset_min_history: float
    onset_decay: float
    onset_half: float
    report_min: float
    escalate: float
    refractory: float
    refractory_escalate: float
    record_alpha: float
    excursion_tolerance: float
    extreme_tolerance: float
    extreme_decades: float
    coarse_blocks: tuple[float, float]
    coarse_alpha: tuple[float, float]
    coarse_tolerance: float
    coarse_min_blocks: float
    coarse_min_history: float
    coarse_dispersion: bool
    trend_level_periods: float
    trend_periods: float
    hold_ms: float
    """How long a level the baseline accepted is still judged against the one before."""
    holt_a: float
    """``1 - exp(-1 / trend_level_periods)``: the level weight of a reading one expected
    period after the last (the usual case; any other gap computes its own)."""
    holt_b: float
    exact_until: float
    """Readings after which every EWMA weight is its configured alpha (the running mean's
    ``1 / (n + 1)`` is smaller than all of them): the division is skipped from there."""
    shift_gain: float  # z_on / cusum_h
    flat_gain: float  # z_on / flatline_decades
    drop_gain: float  # z_on / dropout_k
    fast_alpha: float  # 2 / (rebaseline_run + 1)
    tod_alpha_per_ms: float  # tod_alpha / (ms per bin)
    enabled: tuple[bool, bool, bool, bool, bool, bool]
    """Which sub-detectors run, in component order."""
    onset_from: tuple[bool, bool, bool, bool, bool, bool]
    """Which sub-detectors feed the onset score."""


# ---------------------------------------------------------------- scalar helpers
@inline
def _fmax(a: float, b: float) -> float:
    """numpy's ``fmax``: NaN loses (and of equal values, ``a``). Written as the
    processor's max (``b > a ? b : a``, which keeps ``a`` where ``b`` is NaN) and one
    NaN test: three vector instructions where two NaN tests took six."""
    if math.isnan(a):
        return b
    return b if b > a else a


@inline
def _fmin(a: float, b: float) -> float:
    """numpy's ``fmin``: NaN loses (and of equal values, ``a``); as ``_fmax``."""
    if math.isnan(a):
        return b
    return b if b < a else a


@inline
def squash(z: float, z_half: float) -> float:
    """``z^4 / (z^4 + z_half^4)`` for ``z >= 0``; NaN -> 0. A division of its own, not
    shared with the other scores (a shared one rounds differently, and a statistic
    exactly at its threshold, a CUSUM sum at ``cusum_h``, squashed to just below
    ``score_on``: 410 of 3,184 level-shift events on NAB were lost that way)."""
    if not z > 0.0:
        return 0.0
    z = min(z, 1e6)
    z4 = z * z
    z4 *= z4
    h = z_half * z_half
    return z4 / (z4 + h * h)


@jit
def tail_decades(z: float) -> float:
    """``-log10 P(Z > z)`` for a standard normal Z, finite for any z (NaN -> 0).

    A closed form (Börjesson & Sundberg 1979, relative error < 0.3 %) that stays exact
    far into the tail, where ``1 - Phi`` in floating point is 0.
    """
    if math.isnan(z):
        return 0.0
    a, b = 0.339, 5.510
    x = abs(z)
    x = min(x, 1e4)
    inner = math.log(((1.0 - a) * x + a * math.sqrt(x * x + b)) * _SQRT_2PI)
    log_q = -0.5 * x * x - inner
    if z >= 0.0:
        return -log_q / _LN10
    return -math.log1p(-math.exp(log_q)) / _LN10


@inline
def _scale(dev: float, level: float, p: Params, sensor: float, slow: float) -> float:
    """Robust sigma, floored: relative to the level, to the sensor's own noise floor
    (NaN: none), and to a share of the long-run unclipped deviation (NaN: none), so a
    mostly constant series with rare bursts keeps a finite scale."""
    floor = abs(level) * p.scale_floor_rel + p.scale_floor_abs
    floor = _fmax(floor, sensor)
    floor = _fmax(floor, slow * (p.slow_floor * MAD_TO_SIGMA))
    scale = _fmax(dev * MAD_TO_SIGMA, floor)
    # A level not known yet (NaN) leaves no floor: any positive scale keeps z NaN
    # without a division by zero (which the interpreted reference would raise on).
    return scale if scale > 0.0 else p.scale_floor_abs


@inline
def _limit_level(x: float, limits: tuple[float, float, float, float], inward: float) -> float:
    """0 ok, 1 warn, 2 crit (high limits inclusive, low ones strict) for ``limits``
    (warn low, warn high, crit low, crit high); NaN compares False."""
    warn_low, warn_high, crit_low, crit_high = limits
    if x < crit_low + inward or x >= crit_high - inward:
        return 2.0
    if x < warn_low + inward or x >= warn_high - inward:
        return 1.0
    return 0.0


@inline
def _clipped_step(
    x: float, level: float, dev: float, a: float, a_dev: float, bound: float
) -> tuple[float, float, float]:
    """One outlier-protected EWMA step: the level moves towards ``x`` by its weight ``a``
    times the residual clipped to ``bound``, the mean absolute deviation learns the
    residual capped at ``bound`` (weight ``a_dev``). Returns (level, deviation, |x - level|)."""
    res = x - level
    step = res
    if step > bound:
        step = bound
    elif step < -bound:
        step = -bound
    size = abs(res)
    return level + a * step, dev + a_dev * ((size if size < bound else bound) - dev), size


# ---------------------------------------------------------------- grouping
COUNTING_MAX = 1 << 18
"""Up to this many series a counting sort by slot (its counts fit the L2 cache) groups a
batch of at least an eighth as many readings; beyond it an LSD radix sort, whose passes'
buckets do."""


ROW_TS, ROW_X = 0, 1
"""The columns of a grouped row (``group``): time, the value's float64 bits. 16 bytes,
four rows a cache line: the rows are placed at random and a large batch's outgrow the
cache, so each byte of a row costs memory traffic three times (placed, read by the
kernel, read by the put-back). A row's series is known from where its series begins
(``group``'s ``series``), and its index in the input batch is kept apart
(``origin``, int32): a 1M batch's rows placed at random land in 16 + 4 MB, not 32."""
MAX_READINGS = 2**31 - 1
"""The most readings ``group`` takes in one batch (``origin`` is int32)."""
TOO_MANY = "a batch holds at most 2,147,483,647 readings; split it"
ROW_SCORE, ROW_ONSET = ROW_TS, ROW_X
"""Where ``score_batch`` writes a row's two scores (float64 bits): over its reading,
in the cache line it has just read (scores of their own would be 16 more bytes a
reading written and read back: memory bandwidth is what a large batch is short of)."""
ROW_FIELDS = 2
PLACE_AHEAD = 8
"""Readings ahead whose place in the grouped rows (or the output) is prefetched."""
UNREGISTERED = "slot not registered; get slots from detector.registry"
"""``group``'s error for a slot outside ``[0, size)``: checked in the pass that reads
every slot anyway, not in two passes of their own (a 1M batch's min and max cost 2 %)."""


@jit
def _pack(rows: IntArray, origin: OriginArray, at: int, t: int, x_bits: int, row: int) -> None:
    r = _u(at)
    rows[r, ROW_TS] = t
    rows[r, ROW_X] = x_bits
    origin[r] = row


@jit
def _by_slot(
    slots: IntArray,
    ts: IntArray,
    x_bits: IntArray,
    size: int,
    rows: IntArray,
    origin: OriginArray,
    seg: IntArray,
    series: IntArray,
) -> tuple[int, bool]:
    """The rows placed in slot order, stable (a counting sort): each reading is written
    once, as one 16-byte row and its input index, where its series' rows go. The places
    of the reading ``PLACE_AHEAD`` on are asked for meanwhile: a large batch's rows
    outgrow the cache and each write would wait for its line (14.3 ns a reading
    without, 11.2 with).

    Where each series begins goes into ``seg`` (the last entry: the end) and its slot
    into ``series``, from the counts; the placing follows each series' last time.
    Returns the number of series and whether each series' readings came in time order:
    then no pass over the placed rows is needed (one took 4 ms of a 1M batch)."""
    n = slots.shape[0]
    starts = np.zeros(size + 1, dtype=np.int64)
    for i in range(n):
        s = slots[i]
        if s < 0 or s >= size:
            raise ValueError(UNREGISTERED)
        starts[_u(s + 1)] += 1
    used = 0
    for d in range(size):
        if starts[d + 1]:
            seg[used] = starts[d]
            series[used] = d
            used += 1
        starts[d + 1] += starts[d]
    seg[used] = n
    last = np.full(size, np.iinfo(np.int64).min)  # each series' last time
    ordered = True
    for i in range(n):
        if i + PLACE_AHEAD < n:  # a series in between may move it a row: a hint only
            ahead = starts[_u(slots[i + PLACE_AHEAD])]
            prefetch_item_for_write(rows, ahead, 0)
            prefetch_for_write(origin, ahead)
        s = slots[i]
        at = starts[_u(s)]
        t = ts[i]
        if t < last[_u(s)]:
            ordered = False
        last[_u(s)] = t
        _pack(rows, origin, at, t, x_bits[i], i)
        starts[_u(s)] = at + 1
    return used, ordered


@jit
def _radix_by_slot(slots: IntArray, size: int) -> IntArray:
    """Row indices in slot order, stable: an LSD radix sort of ``slot << bits | row``
    keys, digits of at most 11 bits so each pass's buckets stay in the cache."""
    n = slots.shape[0]
    row_bits = 1
    while (1 << row_bits) < n:
        row_bits += 1
    slot_bits = 1
    while (1 << slot_bits) < size:
        slot_bits += 1
    passes = (slot_bits + 10) // 11
    width = (slot_bits + passes - 1) // passes
    buckets = 1 << width
    mask = buckets - 1
    keys = np.empty(n, dtype=np.int64)
    for i in range(n):  # a slot out of range is refused where the rows are packed
        keys[i] = (slots[i] << row_bits) | i
    out = np.empty(n, dtype=np.int64)
    counts = np.zeros(buckets, dtype=np.int64)
    for ps in range(passes):
        shift = row_bits + ps * width
        counts[:] = 0
        for i in range(n):
            counts[(keys[i] >> shift) & mask] += 1
        total = 0
        for d in range(buckets):
            c = counts[d]
            counts[d] = total
            total += c
        for i in range(n):
            key = keys[i]
            d = (key >> shift) & mask
            out[counts[d]] = key
            counts[d] += 1
        keys, out = out, keys
    row_mask = (1 << row_bits) - 1
    for j in range(n):
        keys[j] &= row_mask
    return keys


@jit
def _pack_in_order(
    slots: IntArray,
    ts: IntArray,
    x_bits: IntArray,
    size: int,
    order: IntArray,
    rows: IntArray,
    origin: OriginArray,
    seg: IntArray,
    series: IntArray,
) -> int:
    """The readings packed as rows in ``order`` (input indices, grouped by slot), where
    each series begins into ``seg`` (the last entry: the end) and its slot into
    ``series``; returns the number of series."""
    n = order.shape[0]
    used = 0
    for j in range(n):
        i = order[j]
        s = slots[i]
        if s < 0 or s >= size:
            raise ValueError(UNREGISTERED)
        if j == 0 or s != series[used - 1]:
            seg[used] = j
            series[used] = s
            used += 1
        _pack(rows, origin, j, ts[i], x_bits[i], i)
    seg[used] = n
    return used


@jit
def group(
    slots: IntArray,
    ts: IntArray,
    xs: FloatArray,
    size: int,
    rows: IntArray | None = None,
    origin: OriginArray | None = None,
    seg: IntArray | None = None,
    series: IntArray | None = None,
) -> tuple[IntArray, OriginArray, IntArray, IntArray]:
    """The batch as grouped rows (``ROW_*`` columns), by series and in each series in
    time order (ties keep the input order); each row's index in the input (``origin``),
    where each series' rows begin (the last entry: the end) and each series' slot.

    A batch already in that order is packed as it is. Otherwise a stable sort by slot:
    a counting sort that places each row once (``_by_slot``) or, for a small batch of
    very many series, a radix sort of indices (``_radix_by_slot``) and a gather; then a
    stable time sort only inside series that arrived out of time order. One record per
    row (time and value), not separate columns: a row placed at random costs one cache
    miss, not two; its input index goes to ``origin``, small enough to stay cached.
    Into ``rows``, ``origin``, ``seg`` and ``series`` (room for n, n, n + 1, n) where
    given: a buffer kept across batches is not fresh memory, whose first touch costs a
    page fault every 4 kB. A slot outside ``[0, size)`` raises ``ValueError``
    (``UNREGISTERED``) before any row is placed by it, and so does a batch of more than
    ``MAX_READINGS`` (``TOO_MANY``).
    """
    n = slots.shape[0]
    if rows is None:
        rows = np.empty((n, ROW_FIELDS), dtype=np.int64)
    if n > MAX_READINGS:
        raise ValueError(TOO_MANY)
    if origin is None:
        origin = np.empty(n, dtype=np.int32)
    if seg is None:
        seg = np.empty(n + 1, dtype=np.int64)
    if series is None:
        series = np.empty(n, dtype=np.int64)
    x_bits = xs.view(np.int64)
    grouped = True
    for i in range(1, n):
        if slots[i] < slots[i - 1] or (slots[i] == slots[i - 1] and ts[i] < ts[i - 1]):
            grouped = False
            break
    if grouped:
        used = _pack_in_order(slots, ts, x_bits, size, np.arange(n), rows, origin, seg, series)
        return rows, origin, seg[: used + 1], series[:used]
    # The counting sort's cost grows with the series, the radix sort's with the readings:
    # a small batch of a large city (the live path) takes the radix sort.
    if size <= COUNTING_MAX and n * 8 >= size:
        used, ordered = _by_slot(slots, ts, x_bits, size, rows, origin, seg, series)
        if ordered:
            return rows, origin, seg[: used + 1], series[:used]
    else:
        by_slot = _radix_by_slot(slots, size)
        used = _pack_in_order(slots, ts, x_bits, size, by_slot, rows, origin, seg, series)
    # Each series' rows; readings out of time order: a stable sort of them by time.
    for q in range(used):
        start, end = seg[q], seg[q + 1]
        ordered = True
        for j in range(start + 1, end):
            if rows[j, ROW_TS] < rows[j - 1, ROW_TS]:
                ordered = False
                break
        if not ordered:
            by_time = np.argsort(rows[start:end, ROW_TS], kind="mergesort")
            segment = rows[start:end].copy()
            came_from = origin[start:end].copy()
            for j in range(end - start):
                rows[start + j] = segment[by_time[j]]
                origin[start + j] = came_from[by_time[j]]
    return rows, origin, seg[: used + 1], series[:used]


class Workspace:
    """Working memory of ``group`` and ``score_batch``, kept across batches and grown to
    the largest: fresh memory costs a page fault per 4 kB at its first touch, and a
    1M-reading batch touched 45 MB of it (~11,000 faults, ~10 ns a reading).
    Holds 36 bytes per reading of the largest batch so far."""

    def __init__(self) -> None:
        self.rows = np.empty((0, ROW_FIELDS), dtype=np.int64)
        self.origin = np.empty(0, dtype=np.int32)
        self.seg = np.empty(1, dtype=np.int64)
        self.series = np.empty(0, dtype=np.int64)

    def fit(self, n: int) -> tuple[IntArray, OriginArray, IntArray, IntArray]:
        """Grouped rows, their input indices, segment starts and series slots for ``n``
        readings."""
        if len(self.rows) < n:
            self.rows = np.empty((n, ROW_FIELDS), dtype=np.int64)
            self.origin = np.empty(n, dtype=np.int32)
            self.seg = np.empty(n + 1, dtype=np.int64)
            self.series = np.empty(n, dtype=np.int64)
        return self.rows[:n], self.origin[:n], self.seg[: n + 1], self.series[:n]


# ---------------------------------------------------------------- the kernel
@inline
def _log_arg(z: float) -> float:
    """``1 + |z|`` (NaN: 0, at most 1e12): the calibrated statistic is its logarithm."""
    raw = abs(z)
    if not raw >= 0.0:
        raw = 0.0
    elif raw > 1e12:
        raw = 1e12
    return 1.0 + raw  # log1p costs more; a tiny |z| does not matter


@inline
def _calibrate(
    cal: tuple[float, float, float, float, float],
    raw: float,
    min_history: float,
    p: Params,
) -> tuple[float, float, float, float, float, float]:
    """Statistic ``raw = ln(_log_arg(z))`` against this series' own history of it,
    ``cal`` (long mean, long variance, short mean, count, record of the short mean): the
    excess of the short mean over the long one where it counts as evidence (NaN: none;
    ``_tail`` turns it into a calibrated z), and that history with ``raw`` folded in.

    ``log1p|z|`` (the log tames heavy tails) is averaged over a few readings and
    compared with its long-run mean and spread (HTM's anomaly likelihood). Evidence
    counts only where that short average beats its own record, which decays towards
    the long-run mean: a series that routinely shows z of some size (a daily spike, a
    bursty count) reports it the first time, not every time. Scalars in and out: a
    state table passed to an inlined helper would cost two atomic reference-count
    operations per call, and keep the lane loop from being vectorised.
    """
    mean, var, prev, count, record = cal
    short = raw
    if count > 0.0:
        short = prev + p.onset_short_alpha * (raw - prev)
    d = short - mean
    excess = math.nan
    if count >= min_history and d > 0.0 and short > record:
        excess = d
    new_record = short
    if count >= 1.0:
        decayed = record - (record - mean) * p.record_alpha
        if decayed > short:
            new_record = decayed
    a = p.onset_long_alpha
    if (count + 1.0) * p.onset_long_alpha < 1.0:  # the running mean's weight is larger
        a = 1.0 / (count + 1.0)
    ad = a * d
    return excess, mean + ad, (1.0 - a) * (var + ad * d), short, count + 1.0, new_record


@inline
def _tail(excess: float, var: float, p: Params) -> float:
    """The calibrated z of an ``_calibrate`` excess over a long-run variance ``var``."""
    return excess / max(sqrt(var), p.onset_min_sd)


@inline
def _may_report(excess: float, var: float, floor: float, p: Params) -> bool:
    """Whether the tail of ``z = _tail(excess, var)`` could exceed ``floor`` decades
    (what would report), so that ``tail_decades`` is worth its logs. In natural logs the
    tail is below ``0.5 z^2 + 0.4 z + 1.16`` (by 0.07 decades at least), which is below
    ``0.55 z^2 + 2`` (their difference has no real root): so only where
    ``0.55 excess^2 > (floor ln 10 - 2) sd^2``. No division and no square root, which
    share the lane loop's bottleneck, the divider. NaN: no."""
    sd2 = max(var, p.onset_min_sd * p.onset_min_sd)
    return excess > 0.0 and 0.55 * excess * excess > (floor * _LN10 - 2.0) * sd2


@inline
def _calibrate_at(
    buf: FloatArray, lane: int, block: int, z: float, floor: float, min_history: float, p: Params
) -> float:
    """``_calibrate`` on a lane's calibration block ``block``, and its evidence in
    decades (0 where it could not exceed ``floor``). Scalar: once a coarse block."""
    at = (S32 + CAL + CAL_WIDTH * block) * LANES + lane
    cal = (
        buf[at],
        buf[at + LANES],
        buf[at + 2 * LANES],
        buf[at + 3 * LANES],
        buf[at + 4 * LANES],
    )
    var = cal[1]  # the variance the excess is judged against
    excess, cal = _calibrate_if(cal, ln(_log_arg(z)), True, min_history, p)
    buf[at] = cal[0]
    buf[at + LANES] = cal[1]
    buf[at + 2 * LANES] = cal[2]
    buf[at + 3 * LANES] = cal[3]
    buf[at + 4 * LANES] = cal[4]
    if not _may_report(excess, var, floor, p):
        return 0.0
    return tail_decades(_tail(excess, var, p))


@inline
def _extreme_span(v: float, lo: float, hi: float, tolerance: float) -> tuple[float, float, bool]:
    """How far ``v`` is beyond the range ``[lo, hi]``, the margin it must exceed
    (``tolerance`` of the width), and whether both logarithms of ``_extreme_of`` are
    needed (a new extreme beyond a positive margin). NaN range: not needed."""
    width = hi - lo
    margin = tolerance * width
    beyond = _fmax(v - hi, lo - v)
    return beyond, margin, width > 0.0 and beyond > margin > 0.0


@inline
def _extreme_of(
    beyond: float, margin: float, width_ok: bool, log_ratio: float, decades: float
) -> float:
    """Evidence of a new extreme: ``beyond`` the range by more than ``margin`` is
    ``decades``, plus as much again for each doubling of the distance beyond it (a wild
    value outranks a marginal record); ``log_ratio = ln(beyond) - ln(margin)``, read only
    where the margin is positive. Not beyond, or no range (``width_ok`` False): 0."""
    if not width_ok or not beyond > margin:
        return 0.0
    if not margin > 0.0:
        return decades
    return decades * (1.0 + log_ratio * _INV_LN2)


@inline
def _extreme(v: float, lo: float, hi: float, tolerance: float, decades: float) -> float:
    """``_extreme_of`` a value ``v`` against the range ``[lo, hi]`` (scalar use)."""
    beyond, margin, logs = _extreme_span(v, lo, hi, tolerance)
    log_ratio = ln(beyond) - ln(margin) if logs else 0.0
    return _extreme_of(beyond, margin, hi - lo > 0.0, log_ratio, decades)


@inline
def _block_end(
    buf: FloatArray,
    lane: int,
    j: int,
    mean: float,
    spread: float,
    sensor: float,
    warm: bool,
    floor: float,
    p: Params,
) -> float:
    """The evidence of a block of coarse scale ``j``: its mean against the level and
    scale of the block means before it (a calibrated z) and against their range (a new
    extreme), and its mean absolute step ``spread`` against the range of the steps of the
    blocks before it (a new extreme of dispersion: a series that starts to oscillate, or
    goes quiet, without leaving its range): day-long and multi-hour changes that no
    single reading shows. Scalar, after the lane loop: it runs once a block."""
    at = (S32 + COARSE + COARSE_WIDTH * j) * LANES + lane
    blocks = buf[at + CB_BLOCKS * LANES]
    level = buf[at + CB_LEVEL * LANES]
    dev = buf[at + CB_DEV * LANES]
    lo = buf[at + CB_MIN * LANES]
    hi = buf[at + CB_MAX * LANES]
    evidence = 0.0
    if not math.isnan(level):
        scale = _scale(dev, level, p, sensor, math.nan)
        if blocks >= 4.0 and warm:
            z = (mean - level) / scale
            cal = CAL_COARSE + j
            evidence = _calibrate_at(buf, lane, cal, z, floor, p.coarse_min_history, p)
        a = 1.0 / (blocks + 1.0)
        a = max(a, p.coarse_alpha[j])
        bound = p.clip_sigma * scale if blocks >= 4.0 else math.inf
        new_level, new_dev, _ = _clipped_step(mean, level, dev, a, a, bound)
        buf[at + CB_LEVEL * LANES] = r32(new_level)
        buf[at + CB_DEV * LANES] = r32(new_dev)
    else:
        buf[at + CB_LEVEL * LANES] = r32(mean)
        buf[at + CB_DEV * LANES] = 0.0
    if blocks >= p.coarse_min_blocks and warm:
        evidence = _fmax(evidence, _extreme(mean, lo, hi, p.coarse_tolerance, p.extreme_decades))
    buf[at + CB_MIN * LANES] = r32(_fmin(lo, mean))
    buf[at + CB_MAX * LANES] = r32(_fmax(hi, mean))
    if p.coarse_dispersion:
        step_lo = buf[at + CB_DMIN * LANES]
        step_hi = buf[at + CB_DMAX * LANES]
        if blocks >= p.coarse_min_blocks and warm:
            got = _extreme(spread, step_lo, step_hi, p.coarse_tolerance, p.extreme_decades)
            evidence = _fmax(evidence, got)
        buf[at + CB_DMIN * LANES] = r32(_fmin(step_lo, spread))
        buf[at + CB_DMAX * LANES] = r32(_fmax(step_hi, spread))
    buf[at + CB_BLOCKS * LANES] = r32(blocks + 1.0)
    return evidence


@inline
def _record(
    events: FloatArray,
    used: int,
    i: int,
    k: int,
    active: float,
    start: float,
    peak: float,
    z: float,
    ref: float,
    since_ms: float,
) -> None:
    """Write transition record ``used`` (the caller made room)."""
    events[used, 0] = i
    events[used, 1] = k
    events[used, 2] = active
    events[used, 3] = start
    events[used, 4] = peak
    events[used, 5] = z
    events[used, 6] = ref
    events[used, 7] = since_ms


@inline
def _transition(
    state: tuple[float, float, float],
    q: float,
    begins_at: float,
    learnable: bool,
    blip: bool,
    enabled: bool,
    p: Params,
) -> tuple[float, tuple[float, float, float]]:
    """A sub-detector's event ``state`` (active, start, peak) after a reading of score
    ``q``: on at ``score_on``, off below ``score_off`` (hysteresis). ``blip``: a dropout,
    whose event the reading that ends the silence both starts and ends. Returns the
    transition (a ``lanes`` event code; 0 for a sub-detector not ``enabled``) and the
    new state."""
    active, start, peak = state
    if not enabled:
        return 0.0, state
    if not active > 0.0:
        if not q >= p.score_on:
            return 0.0, state
        if blip:
            return BLIP, state
        return STARTS, (1.0, begins_at, r32(q))
    ends = learnable if blip else (q < p.score_off and learnable)
    if not ends:
        return 0.0, (active, start, r32(max(peak, q)))
    return ENDS, (0.0, start, peak)


@inline
def _onset_decision(
    evidence: float,
    bar: float,
    ref: float,
    since: float,
    learnable: bool,
    reported: float,
    p: Params,
) -> tuple[float, float, float, float]:
    """The onset score of a reading of ``evidence`` decades, and the report state after
    it (the last report's evidence, the decayed reference, readings since the report):
    a report where the evidence is at least ``report_min`` and above ``bar``."""
    if learnable and evidence >= p.report_min and evidence > bar:
        kept = r32(evidence)
        return evidence / (evidence + p.onset_half), kept, kept, 0.0
    return 0.0, reported, r32(ref), r32(since if since < 1e6 else 1e6)


@inline
def _calibrate_if(
    cal: tuple[float, float, float, float, float],
    raw: float,
    on: bool,
    min_history: float,
    p: Params,
) -> tuple[float, tuple[float, float, float, float, float]]:
    """``_calibrate`` of a statistic where ``on`` (for the onset: the sub-detector feeds
    it and judged this reading), the history rounded as stored; else ``cal`` as it was."""
    if not on:
        return math.nan, cal
    excess, mean, var, short, count, record = _calibrate(cal, raw, min_history, p)
    return excess, (r32(mean), r32(var), r32(short), r32(count), r32(record))


@inline
def _block_step(
    sums: tuple[float, float, float], x: float, step: float, size: float, learn_ok: bool
) -> tuple[float, tuple[float, float, float], tuple[float, float]]:
    """A coarse scale's running block (sum, sum of absolute steps, count) after reading
    ``x``: the block's count where the block of ``size`` readings ends here (0: it goes
    on), the new sums (restarted at an end), and the ended block's sums (its mean and
    mean step are divided out after the lane loop, once a block: a division of every
    reading in the loop costs more than its share of the divider)."""
    if not learn_ok:
        return 0.0, sums, (0.0, 0.0)
    total = sums[0] + x
    steps = sums[1] + step
    count = sums[2] + 1.0
    if count >= size:
        return count, (0.0, 0.0, 0.0), (total, steps)
    return 0.0, (r32(total), r32(steps), r32(count)), (0.0, 0.0)


Switches = tuple[tuple[int | None, ...], tuple[int | None, ...]]


def switches_of(p: Params) -> Switches:
    """The sub-detector switches of ``p`` (enabled; feeds the onset score) as the kernel
    takes them: ``None`` for off, 1 for on. Their *types* differ, so the kernel is
    compiled for each set of switches and a part switched off costs nothing; read at
    run time, they cost the lane loop one instruction in eight (the masks combined with
    them, spilled and reloaded)."""
    return (
        tuple(1 if on else None for on in p.enabled),
        tuple(1 if on else None for on in p.onset_from),
    )


@inline
def _on(switch: Any) -> bool:
    """Whether a switch of ``switches_of`` is on (known when compiling)."""
    return switch is not None


# Lane buffer columns used below, as constants of the lane loop (``lanes.py``).
_X = IN_X * LANES
_T = IN_T * LANES


@jit
def _lane_step(buf: FloatArray, width: int, p: Params, bin_ms: float, switches: Switches) -> None:
    """One reading of each of ``width`` lanes: every sub-detector's score, the onset
    calibrations' statistics, the event transitions and the learning, as one loop over
    the lanes that LLVM vectorises (only arithmetic, selects and contiguous loads and
    stores of the lane buffer). What is rare or needs libm (a tail probability, a
    coarse block's end, an event record) is flagged in ``OUT_*`` columns for the scalar
    pass after it.

    Compiled, the loop runs over all ``LANES``, not ``width``: a constant trip count
    of one vector's lanes is straight-line vector code, with no loop to hoist the
    parameters' broadcasts out of (the hoisted ones were spilled to the stack and read
    back: a tenth of this function's time) and no scalar copy for a remainder. A lane
    past ``width`` computes on stale values; nothing reads them. Interpreted, only the
    lanes in use run (stale values could leave ``math``'s domains).
    """
    half = p.onset_half
    enabled, feeds = switches  # each sub-detector's: on, and feeding the onset score
    for lane in range(width if JIT_DISABLED else LANES):
        x = buf[_X + lane]
        t = buf[_T + lane]
        learnable = not math.isnan(x) and abs(x) != math.inf
        if not learnable:
            x = math.nan
        statistical = buf[(MET + M_STAT) * LANES + lane] > 0.0
        n = buf[(S64 + N) * LANES + lane]
        period_ms = buf[(MET + M_PERIOD) * LANES + lane]
        learned = buf[(S64 + PERIOD) * LANES + lane]
        expected = learned if math.isnan(period_ms) else period_ms
        last_ts = buf[(S64 + LAST_TS) * LANES + lane]
        last_x = buf[(S64 + LAST_X) * LANES + lane]
        first = math.isnan(last_ts)
        dt = t - last_ts  # NaN for a first reading
        dt = max(dt, 0.0)
        hlevel = buf[(S64 + HLEVEL) * LANES + lane]
        trend = buf[(S32 + TREND) * LANES + lane]
        pred = hlevel + trend * (dt * _PER_HOUR)
        learn_ok = learnable and statistical
        if x == buf[(MET + M_OFF) * LANES + lane]:
            # Equipment switched off by design (a fan its controller stopped): a state,
            # not a level; the statistical detectors neither judge nor learn it.
            learn_ok = False
        warm = n >= p.warmup
        judge_ok = warm and learn_ok
        inv_n1 = 1.0 / (n + 1.0) if n < p.exact_until else 0.0
        sensor = buf[(MET + M_SENSOR) * LANES + lane]

        # --- limits, with hysteresis: entered at a limit, left a margin inside it.
        lim_prev = buf[(S32 + LIM_LEVEL) * LANES + lane]
        lim_new = lim_prev
        sc_lim = 0.0
        if _on(enabled[LIMITS]) and learnable:
            limits = (
                buf[(MET + M_WARN_LOW) * LANES + lane],
                buf[(MET + M_WARN_HIGH) * LANES + lane],
                buf[(MET + M_CRIT_LOW) * LANES + lane],
                buf[(MET + M_CRIT_HIGH) * LANES + lane],
            )
            outer = _limit_level(x, limits, 0.0)
            inner = _limit_level(x, limits, buf[(MET + M_MARGIN) * LANES + lane])
            held = lim_prev if lim_prev < inner else inner
            lim_new = outer if outer > held else held
            if lim_new >= 2.0:
                sc_lim = 1.0
            elif lim_new >= 1.0:
                sc_lim = p.limit_warn_score
        z_lim = lim_new if _on(enabled[LIMITS]) else 0.0

        # --- adaptive baseline: robust z against the outlier-protected EWMA level.
        base_level = buf[(S64 + BASE_LEVEL) * LANES + lane]
        base_dev = buf[(S32 + BASE_DEV) * LANES + lane]
        base_slow = buf[(S32 + BASE_SLOW) * LANES + lane]
        base_scale = _scale(base_dev, base_level, p, sensor, base_slow)
        z_base = (x - base_level) / base_scale
        # After the baseline accepted a new level (a run of outliers), the reading is also
        # judged against the level before it, for a while: a flood that lifts duct
        # moisture for an hour stays an anomaly though the baseline followed it.
        hold_ref = buf[(S64 + HOLD_REF) * LANES + lane]
        z_hold = math.nan  # nothing held
        if not math.isnan(hold_ref):
            z_hold = (x - hold_ref) / buf[(S32 + HOLD_SCALE) * LANES + lane]
        u_base = 0.0  # the statistic its score squashes; 0: none
        zb = 0.0
        ref_base = math.nan
        judged_base = False
        if _on(enabled[BASELINE]):
            judged_base = judge_ok
            if abs(z_hold) > abs(z_base):
                zb = z_hold
                ref_base = hold_ref
            else:
                zb = z_base
                ref_base = base_level
            if judge_ok:
                u_base = abs(zb)

        # --- time of day (local time): the level and scale of this hour's bin.
        tod_level = buf[IN_TOD * LANES + lane]
        tod_dev = buf[(IN_TOD + 1) * LANES + lane]
        tod_count = buf[(IN_TOD + 2) * LANES + lane]
        tod_slow = buf[(S32 + TOD_SLOW) * LANES + lane]
        u_tod = 0.0  # the statistic its score squashes; 0: none
        z_tod = 0.0
        ref_tod = math.nan
        judged_tod = False
        if _on(enabled[TIME_OF_DAY]):
            z_tod = (x - tod_level) / _scale(tod_dev, tod_level, p, sensor, tod_slow)
            judged_tod = (
                judge_ok
                and tod_count >= p.tod_min_count
                and t - buf[(S64 + FIRST_TS) * LANES + lane] >= p.tod_min_days * DAY_MS
            )
            ref_tod = tod_level
            if judged_tod:
                u_tod = abs(z_tod)

        # --- level shift: two-sided CUSUM of the clipped residual against the forecast.
        cu_dev = buf[(S32 + CUSUM_DEV) * LANES + lane]
        cu_scale = _scale(cu_dev, pred, p, sensor, math.nan)
        resid = (x - pred) / cu_scale
        if resid > p.cusum_clip:
            resid = p.cusum_clip
        elif resid < -p.cusum_clip:
            resid = -p.cusum_clip
        if math.isnan(resid) or not warm:
            resid = 0.0
        pos = buf[(S32 + CUSUM_POS) * LANES + lane] + resid - p.cusum_k
        if not pos > 0.0:
            pos = 0.0
        neg = buf[(S32 + CUSUM_NEG) * LANES + lane] - resid - p.cusum_k
        if not neg > 0.0:
            neg = 0.0
        stat = pos if pos >= neg else neg
        u_shift = 0.0  # the statistic its score squashes; 0: none
        z_shift = 0.0
        ref_shift = math.nan
        if _on(enabled[LEVEL_SHIFT]):
            ref_shift = pred
            if stat > 0.0:
                z_shift = (stat if pos >= neg else -stat) * p.shift_gain / p.z_on
                if judge_ok:
                    u_shift = p.shift_gain * stat

        # --- flatline: a run of equal readings, weighed by this series' repeat rate.
        same = x == last_x
        flat_run = buf[(S32 + FLAT_RUN) * LANES + lane] + 1.0 if same else 0.0
        flat_rate = buf[(S32 + FLAT_RATE) * LANES + lane]
        u_flat = 0.0  # the statistic its score squashes; 0: none
        flat_judged = False
        rate = flat_rate  # the repeat rate, clamped: a run's decades are -log10 of it each
        if rate < 1e-3:
            rate = 1e-3
        elif rate > 0.999:
            rate = 0.999
        z_flat = 0.0
        ref_flat = math.nan
        if _on(enabled[FLATLINE]):
            z_flat = flat_run + 1.0
            ref_flat = last_x
            if (
                flat_run >= p.flatline_min_run - 1.0
                and judge_ok
                and x != buf[(MET + M_VALID_MIN) * LANES + lane]
                and x != buf[(MET + M_VALID_MAX) * LANES + lane]
            ):
                flat_judged = True

        # --- dropout: the gap before this reading, in expected periods.
        u_drop = 0.0  # the statistic its score squashes; 0: none
        z_drop = 0.0
        ref_drop = math.nan
        if _on(enabled[DROPOUT]):
            gap = math.nan
            if dt == expected:  # the usual gap
                gap = 1.0
            elif expected > 0.0:
                gap = dt / expected
            z_drop = gap
            ref_drop = expected
            if not math.isnan(gap) and learnable and (not math.isnan(period_ms) or warm):
                u_drop = p.drop_gain * gap

        # Every logarithm of the reading at once (one division for six): the calibrated
        # statistics, the distance of a new extreme, the flatline's repeat rate.
        lo = buf[(S64 + RANGE_MIN) * LANES + lane]
        hi = buf[(S64 + RANGE_MAX) * LANES + lane]
        beyond, margin, ext_logs = _extreme_span(x, lo, hi, p.extreme_tolerance)
        log_base, log_tod, log_shift, log_beyond, log_margin, log_rate = ln6(
            (
                _log_arg(z_base),
                _log_arg(z_tod),
                _log_arg(z_shift),
                beyond if ext_logs else 1.0,
                margin if ext_logs else 1.0,
                1.0 if math.isnan(rate) else rate,
            )
        )
        if flat_judged and not math.isnan(rate):
            u_flat = p.flat_gain * (flat_run * -(log_rate * _INV_LN10))
        sc_base = squash(u_base, p.z_half)
        sc_tod = squash(u_tod, p.z_half)
        sc_shift = squash(u_shift, p.z_half)
        sc_flat = squash(u_flat, p.z_half)
        sc_drop = squash(u_drop, p.z_half)
        judged_shift = sc_shift > 0.0
        combined = max(0.0, sc_lim)
        combined = max(combined, sc_base)
        combined = max(combined, sc_tod)
        combined = max(combined, sc_shift)
        combined = max(combined, sc_flat)
        combined = max(combined, sc_drop)
        buf[OUT_SCORE * LANES + lane] = combined
        buf[(OUT_SC + LIMITS) * LANES + lane] = sc_lim
        buf[(OUT_SC + BASELINE) * LANES + lane] = sc_base
        buf[(OUT_SC + TIME_OF_DAY) * LANES + lane] = sc_tod
        buf[(OUT_SC + LEVEL_SHIFT) * LANES + lane] = sc_shift
        buf[(OUT_SC + FLATLINE) * LANES + lane] = sc_flat
        buf[(OUT_SC + DROPOUT) * LANES + lane] = sc_drop
        buf[(OUT_Z + LIMITS) * LANES + lane] = z_lim
        buf[(OUT_Z + BASELINE) * LANES + lane] = zb
        buf[(OUT_Z + TIME_OF_DAY) * LANES + lane] = z_tod
        buf[(OUT_Z + LEVEL_SHIFT) * LANES + lane] = z_shift
        buf[(OUT_Z + FLATLINE) * LANES + lane] = z_flat
        buf[(OUT_Z + DROPOUT) * LANES + lane] = z_drop
        buf[(OUT_REFS + LIMITS) * LANES + lane] = math.nan
        buf[(OUT_REFS + BASELINE) * LANES + lane] = ref_base
        buf[(OUT_REFS + TIME_OF_DAY) * LANES + lane] = ref_tod
        buf[(OUT_REFS + LEVEL_SHIFT) * LANES + lane] = ref_shift
        buf[(OUT_REFS + FLATLINE) * LANES + lane] = ref_flat
        buf[(OUT_REFS + DROPOUT) * LANES + lane] = ref_drop

        # --- onset: evidence in decades, reported when it stands out from the last report.
        since = buf[(S32 + SINCE_REPORT) * LANES + lane] + 1.0
        ref = buf[(S32 + REPORT_REF) * LANES + lane] * p.onset_decay
        bar = ref * p.escalate
        if since <= p.refractory:
            # Just after a report only a much stronger one: no trail of escalating rows.
            strong = buf[(S32 + REPORTED) * LANES + lane] * p.refractory_escalate
            bar = max(bar, strong)
        floor = bar if bar > p.report_min else p.report_min  # what would report
        buf[OUT_BAR * LANES + lane] = bar
        buf[OUT_REF * LANES + lane] = ref
        buf[OUT_SINCE * LANES + lane] = since
        buf[OUT_LEARNABLE * LANES + lane] = 1.0 if learnable else 0.0
        buf[OUT_WARM * LANES + lane] = 1.0 if warm else 0.0
        evidence = 0.0
        if learn_ok and judge_ok and p.extreme_decades != 0.0:
            evidence = _extreme_of(
                beyond, margin, hi - lo > 0.0, log_beyond - log_margin, p.extreme_decades
            )
        if learn_ok:
            buf[(S64 + RANGE_MIN) * LANES + lane] = _fmin(lo, x)
            buf[(S64 + RANGE_MAX) * LANES + lane] = _fmax(hi, x)
        step_abs = 0.0 if math.isnan(last_x) else abs(x - last_x)
        # The running blocks of the coarse scales (written out: the lane loop must be the
        # innermost loop for LLVM to vectorise it).
        at = (S32 + COARSE) * LANES + lane
        sums = (buf[at + CB_SUM * LANES], buf[at + CB_DSUM * LANES], buf[at + CB_COUNT * LANES])
        ends, sums, block = _block_step(sums, x, step_abs, p.coarse_blocks[0], learn_ok)
        # A block ended, or (below) a tail may report: the scalar pass decides the onset.
        # ``|``, not ``or``, and the onset decision below computed either way: branches on
        # ``rare`` let LLVM thread jumps into copies of the stores after them, whose
        # addresses it cannot prove consecutive; without AVX-512's masked scatter it then
        # judged the loop not worth vectorising (on AVX2 all of it ran one lane at a time).
        rare = ends > 0.0
        buf[at + CB_SUM * LANES] = sums[0]
        buf[at + CB_DSUM * LANES] = sums[1]
        buf[at + CB_COUNT * LANES] = sums[2]
        buf[OUT_BLOCK * LANES + lane] = ends
        buf[OUT_BLOCK_SUM * LANES + lane] = block[0]
        buf[OUT_BLOCK_STEPS * LANES + lane] = block[1]
        at = (S32 + COARSE + COARSE_WIDTH) * LANES + lane
        sums = (buf[at + CB_SUM * LANES], buf[at + CB_DSUM * LANES], buf[at + CB_COUNT * LANES])
        ends, sums, block = _block_step(sums, x, step_abs, p.coarse_blocks[1], learn_ok)
        rare = rare | (ends > 0.0)
        buf[at + CB_SUM * LANES] = sums[0]
        buf[at + CB_DSUM * LANES] = sums[1]
        buf[at + CB_COUNT * LANES] = sums[2]
        buf[(OUT_BLOCK + 1) * LANES + lane] = ends
        buf[(OUT_BLOCK_SUM + 1) * LANES + lane] = block[0]
        buf[(OUT_BLOCK_STEPS + 1) * LANES + lane] = block[1]
        # An outlier no farther from the baseline level than the large ones of its side
        # lately (by the tolerance) is a size this series shows routinely (a daily spike,
        # a burst of a bursty count): its baseline and time-of-day z give no evidence,
        # however their scales have moved since. Sizes in value units, unlike the
        # calibration's record of z, which a scale that breathes lets a repeat beat.
        # A larger excursion lifts the size halfway to it: one seen once counts half.
        routine = False
        if learn_ok and not math.isnan(base_level):
            res = x - base_level
            keep = 1.0 - p.record_alpha
            ex_pos = buf[(S32 + EXC_POS) * LANES + lane] * keep
            ex_neg = buf[(S32 + EXC_NEG) * LANES + lane] * keep
            if res > 0.0:
                routine = res <= ex_pos * (1.0 + p.excursion_tolerance)
                if res > ex_pos:
                    ex_pos += _EXCURSION_RISE * (res - ex_pos)
            else:
                routine = -res <= ex_neg * (1.0 + p.excursion_tolerance)
                if -res > ex_neg:
                    ex_neg += _EXCURSION_RISE * (-res - ex_neg)
            buf[(S32 + EXC_POS) * LANES + lane] = r32(ex_pos)
            buf[(S32 + EXC_NEG) * LANES + lane] = r32(ex_neg)
            routine = routine and abs(z_base) > p.clip_sigma
        # The calibrations of the baseline (its own z, not the held one), the time of day
        # and the level shift: their statistics here, a tail probability after the loop.
        on = _on(enabled[BASELINE]) and _on(feeds[BASELINE]) and judged_base
        at = (S32 + CAL + CAL_WIDTH * CAL_BASELINE) * LANES + lane
        cal = (
            buf[at],
            buf[at + LANES],
            buf[at + 2 * LANES],
            buf[at + 3 * LANES],
            buf[at + 4 * LANES],
        )
        var = cal[1]  # the variance the excess is judged against
        excess, cal = _calibrate_if(cal, log_base, on, p.onset_min_history, p)
        buf[at] = cal[0]
        buf[at + LANES] = cal[1]
        buf[at + 2 * LANES] = cal[2]
        buf[at + 3 * LANES] = cal[3]
        buf[at + 4 * LANES] = cal[4]
        report = not routine and _may_report(excess, var, floor, p)
        rare = rare | report
        buf[(OUT_TAIL + 0) * LANES + lane] = excess if report else math.nan
        buf[(OUT_TAIL_VAR + 0) * LANES + lane] = var
        on = _on(enabled[TIME_OF_DAY]) and _on(feeds[TIME_OF_DAY]) and judged_tod
        at = (S32 + CAL + CAL_WIDTH * CAL_TOD) * LANES + lane
        cal = (
            buf[at],
            buf[at + LANES],
            buf[at + 2 * LANES],
            buf[at + 3 * LANES],
            buf[at + 4 * LANES],
        )
        var = cal[1]  # the variance the excess is judged against
        excess, cal = _calibrate_if(cal, log_tod, on, p.onset_min_history, p)
        buf[at] = cal[0]
        buf[at + LANES] = cal[1]
        buf[at + 2 * LANES] = cal[2]
        buf[at + 3 * LANES] = cal[3]
        buf[at + 4 * LANES] = cal[4]
        report = not routine and _may_report(excess, var, floor, p)
        rare = rare | report
        buf[(OUT_TAIL + 1) * LANES + lane] = excess if report else math.nan
        buf[(OUT_TAIL_VAR + 1) * LANES + lane] = var
        on = _on(enabled[LEVEL_SHIFT]) and _on(feeds[LEVEL_SHIFT]) and judged_shift
        at = (S32 + CAL + CAL_WIDTH * CAL_SHIFT) * LANES + lane
        cal = (
            buf[at],
            buf[at + LANES],
            buf[at + 2 * LANES],
            buf[at + 3 * LANES],
            buf[at + 4 * LANES],
        )
        var = cal[1]
        excess, cal = _calibrate_if(cal, log_shift, on, p.onset_min_history, p)
        buf[at] = cal[0]
        buf[at + LANES] = cal[1]
        buf[at + 2 * LANES] = cal[2]
        buf[at + 3 * LANES] = cal[3]
        buf[at + 4 * LANES] = cal[4]
        report = _may_report(excess, var, floor, p)
        rare = rare | report
        buf[(OUT_TAIL + 2) * LANES + lane] = excess if report else math.nan
        buf[(OUT_TAIL_VAR + 2) * LANES + lane] = var
        if _on(enabled[LIMITS]) and _on(feeds[LIMITS]):
            q = min(sc_lim, 1.0 - 1e-12)
            evidence = _fmax(evidence, half * q / (1.0 - q))
        if _on(enabled[FLATLINE]) and _on(feeds[FLATLINE]):
            q = min(sc_flat, 1.0 - 1e-12)
            evidence = _fmax(evidence, half * q / (1.0 - q))
        if _on(enabled[DROPOUT]) and _on(feeds[DROPOUT]):
            q = min(sc_drop, 1.0 - 1e-12)
            evidence = _fmax(evidence, half * q / (1.0 - q))
        buf[OUT_EVIDENCE * LANES + lane] = evidence
        # The onset decision here, where no tail or block adds evidence (almost every
        # reading); elsewhere the scalar pass decides, after those.
        buf[OUT_RARE * LANES + lane] = 1.0 if rare else 0.0
        was_reported = buf[(S32 + REPORTED) * LANES + lane]
        onset, reported, report_ref, since_report = _onset_decision(
            evidence, bar, ref, since, learnable, was_reported, p
        )
        if not rare:
            buf[OUT_ONSET * LANES + lane] = onset
            buf[(S32 + REPORTED) * LANES + lane] = reported
            buf[(S32 + REPORT_REF) * LANES + lane] = report_ref
            buf[(S32 + SINCE_REPORT) * LANES + lane] = since_report

        # --- decisions: on at score_on, off below score_off (hysteresis). Written out per
        # sub-detector, as the calibrations above: the lanes must be the innermost loop
        # for LLVM to vectorise, and a loop nest of their own (sub-detectors around
        # lanes) measured 10 % slower end to end (6.8 against 7.5 M readings/s).
        buf[OUT_SINCE_MS * LANES + lane] = t - buf[(S64 + SINCE_TS) * LANES + lane]
        buf[OUT_DROP_START * LANES + lane] = last_ts
        changes = 0.0
        at = (S32 + EV_ACTIVE + LIMITS) * LANES + lane
        at_start = (S64 + EV_START + LIMITS) * LANES + lane
        at_peak = (S32 + EV_PEAK + LIMITS) * LANES + lane
        state = (buf[at], buf[at_start], buf[at_peak])
        code, state = _transition(state, sc_lim, t, learnable, False, _on(enabled[LIMITS]), p)
        buf[at] = state[0]
        buf[at_start] = state[1]
        buf[at_peak] = state[2]
        buf[(OUT_EVENT + LIMITS) * LANES + lane] = code
        changes += code
        at = (S32 + EV_ACTIVE + BASELINE) * LANES + lane
        at_start = (S64 + EV_START + BASELINE) * LANES + lane
        at_peak = (S32 + EV_PEAK + BASELINE) * LANES + lane
        state = (buf[at], buf[at_start], buf[at_peak])
        code, state = _transition(state, sc_base, t, learnable, False, _on(enabled[BASELINE]), p)
        buf[at] = state[0]
        buf[at_start] = state[1]
        buf[at_peak] = state[2]
        buf[(OUT_EVENT + BASELINE) * LANES + lane] = code
        changes += code
        at = (S32 + EV_ACTIVE + TIME_OF_DAY) * LANES + lane
        at_start = (S64 + EV_START + TIME_OF_DAY) * LANES + lane
        at_peak = (S32 + EV_PEAK + TIME_OF_DAY) * LANES + lane
        state = (buf[at], buf[at_start], buf[at_peak])
        code, state = _transition(state, sc_tod, t, learnable, False, _on(enabled[TIME_OF_DAY]), p)
        buf[at] = state[0]
        buf[at_start] = state[1]
        buf[at_peak] = state[2]
        buf[(OUT_EVENT + TIME_OF_DAY) * LANES + lane] = code
        changes += code
        at = (S32 + EV_ACTIVE + LEVEL_SHIFT) * LANES + lane
        at_start = (S64 + EV_START + LEVEL_SHIFT) * LANES + lane
        at_peak = (S32 + EV_PEAK + LEVEL_SHIFT) * LANES + lane
        state = (buf[at], buf[at_start], buf[at_peak])
        code, state = _transition(
            state, sc_shift, t, learnable, False, _on(enabled[LEVEL_SHIFT]), p
        )
        buf[at] = state[0]
        buf[at_start] = state[1]
        buf[at_peak] = state[2]
        buf[(OUT_EVENT + LEVEL_SHIFT) * LANES + lane] = code
        changes += code
        at = (S32 + EV_ACTIVE + FLATLINE) * LANES + lane
        at_start = (S64 + EV_START + FLATLINE) * LANES + lane
        at_peak = (S32 + EV_PEAK + FLATLINE) * LANES + lane
        state = (buf[at], buf[at_start], buf[at_peak])
        code, state = _transition(state, sc_flat, t, learnable, False, _on(enabled[FLATLINE]), p)
        buf[at] = state[0]
        buf[at_start] = state[1]
        buf[at_peak] = state[2]
        buf[(OUT_EVENT + FLATLINE) * LANES + lane] = code
        changes += code
        at = (S32 + EV_ACTIVE + DROPOUT) * LANES + lane
        at_start = (S64 + EV_START + DROPOUT) * LANES + lane
        at_peak = (S32 + EV_PEAK + DROPOUT) * LANES + lane
        state = (buf[at], buf[at_start], buf[at_peak])
        code, state = _transition(state, sc_drop, t, learnable, True, _on(enabled[DROPOUT]), p)
        buf[at] = state[0]
        buf[at_start] = state[1]
        buf[at_peak] = state[2]
        buf[(OUT_EVENT + DROPOUT) * LANES + lane] = code
        changes += code
        buf[OUT_EVENTS * LANES + lane] = changes

        # --- learning. Limits first: their level holds for non-finite readings.
        buf[(S32 + LIM_LEVEL) * LANES + lane] = lim_new
        a_slow = p.alpha_slow if p.alpha_slow > inv_n1 else inv_n1
        if learn_ok:
            # Baseline: one outlier-protected EWMA step of level and deviation.
            lvl = x if math.isnan(base_level) else base_level
            bound = math.inf
            if warm:
                bound = p.clip_sigma * _scale(base_dev, lvl, p, sensor, math.nan)
            a = p.alpha if p.alpha > inv_n1 else inv_n1
            a_s = p.alpha_scale if p.alpha_scale > inv_n1 else inv_n1
            new_level, new_dev, abs_res = _clipped_step(x, lvl, base_dev, a, a_s, bound)
            if math.isnan(base_level):
                new_dev = 0.0
            fast_prev = buf[(S64 + BASE_FAST) * LANES + lane]
            fast = x
            if not math.isnan(fast_prev):
                fast = fast_prev + (x - fast_prev) * p.fast_alpha
            buf[(S32 + BASE_SLOW) * LANES + lane] = r32(base_slow + (abs_res - base_slow) * a_slow)
            # Outliers in a row on one side: the series has moved for good.
            run = buf[(S32 + BASE_RUN) * LANES + lane]
            side = 0.0
            if warm and abs(z_base) > p.clip_sigma:
                side = 1.0 if z_base > 0.0 else -1.0
            if side == 0.0:
                run = 0.0
            elif (run > 0.0 and side > 0.0) or (run < 0.0 and side < 0.0):
                run += side
            else:
                run = side
            run_level = buf[(S64 + RUN_LEVEL) * LANES + lane]
            hold_scale = buf[(S32 + HOLD_SCALE) * LANES + lane]
            if abs(run) == 1.0 and math.isnan(hold_ref):
                # Where the series was, and its noise, before the outliers inflated it.
                run_level = lvl
                hold_scale = r32(base_scale)
            new_hold = hold_ref
            hold_ts = buf[(S64 + HOLD_TS) * LANES + lane]
            if abs(run) >= p.rebaseline_run:
                if math.isnan(hold_ref):
                    new_hold = run_level
                    hold_ts = t
                new_level = fast
                run = 0.0
            elif not math.isnan(hold_ref) and (
                abs(z_hold) < p.clip_sigma or t - hold_ts > p.hold_ms
            ):
                new_hold = math.nan  # back to where it was, or the new normal
            buf[(S64 + RUN_LEVEL) * LANES + lane] = run_level
            buf[(S32 + HOLD_SCALE) * LANES + lane] = hold_scale
            buf[(S64 + HOLD_REF) * LANES + lane] = new_hold
            buf[(S64 + HOLD_TS) * LANES + lane] = hold_ts
            buf[(S64 + BASE_LEVEL) * LANES + lane] = new_level
            buf[(S32 + BASE_DEV) * LANES + lane] = r32(new_dev)
            buf[(S64 + BASE_FAST) * LANES + lane] = fast
            buf[(S32 + BASE_RUN) * LANES + lane] = run

            # Time of day: each reading weighs by the time it covers.
            alpha_t = _fmin(dt, bin_ms) * p.tod_alpha_per_ms
            new_count = tod_count + 1.0
            a_t = alpha_t
            if new_count * alpha_t < 1.0:  # the running mean's weight is larger
                a_t = 1.0 / new_count
            t_lvl = x if math.isnan(tod_level) else tod_level
            t_bound = math.inf
            if tod_count >= 3.0:
                t_bound = p.clip_sigma * _scale(tod_dev, t_lvl, p, sensor, math.nan)
            t_level, t_dev, t_abs = _clipped_step(x, t_lvl, tod_dev, a_t, a_t, t_bound)
            if math.isnan(tod_level):
                t_dev = 0.0
            buf[IN_TOD * LANES + lane] = r32(t_level)  # the lane holds its bin, as stored
            buf[(IN_TOD + 1) * LANES + lane] = r32(t_dev)
            buf[(IN_TOD + 2) * LANES + lane] = r32(new_count)
            buf[(S32 + TOD_SLOW) * LANES + lane] = r32(tod_slow + (t_abs - tod_slow) * a_slow)

            # Level shift: the forecast residual's scale; the sums restart on a shift.
            if not math.isnan(pred):
                c_bound = p.clip_sigma * cu_scale if warm else math.inf
                c_abs = abs(x - pred)
                c_step = (c_abs if c_abs < c_bound else c_bound) - cu_dev
                a_c = p.alpha_scale if p.alpha_scale > inv_n1 else inv_n1
                buf[(S32 + CUSUM_DEV) * LANES + lane] = r32(cu_dev + c_step * a_c)
            if stat >= p.cusum_h:
                pos = 0.0
                neg = 0.0
            buf[(S32 + CUSUM_POS) * LANES + lane] = r32(pos)
            buf[(S32 + CUSUM_NEG) * LANES + lane] = r32(neg)

            # Flatline: the repeat rate and the run.
            if not math.isnan(last_x):
                a_r = p.alpha_repeat if p.alpha_repeat > inv_n1 else inv_n1
                new_rate = flat_rate + ((1.0 if same else 0.0) - flat_rate) * a_r
                buf[(S32 + FLAT_RATE) * LANES + lane] = r32(new_rate)
            buf[(S32 + FLAT_RUN) * LANES + lane] = r32(flat_run)

        # --- the core: Holt level and trend, period, last value and time.
        if learnable:
            if learn_ok:
                la = buf[IN_LA * LANES + lane]
                lb = buf[IN_LB * LANES + lane]
                new_h = x if first else pred + la * (x - pred)
                step_t = trend
                if dt > 0.0:
                    step_t = (new_h - hlevel) * (HOUR_MS / dt)
                buf[(S64 + HLEVEL) * LANES + lane] = new_h
                buf[(S32 + TREND) * LANES + lane] = (
                    0.0 if first else r32(trend + lb * (step_t - trend))
                )
                buf[(S64 + N) * LANES + lane] = n + 1.0
            # The period a generic series reports at: robust EWMA of its positive gaps.
            if dt > 0.0:
                if math.isnan(learned):
                    buf[(S64 + PERIOD) * LANES + lane] = dt
                else:
                    capped = _fmin(dt, 3.0 * learned)
                    a_p = p.alpha_period
                    if n * p.alpha_period < 1.0:
                        a_p = 1.0 / (n if n > 1.0 else 1.0)
                    buf[(S64 + PERIOD) * LANES + lane] = learned + a_p * (capped - learned)
            if x != last_x:
                buf[(S64 + SINCE_TS) * LANES + lane] = t
            if first:
                buf[(S64 + FIRST_TS) * LANES + lane] = t
            buf[(S64 + LAST_X) * LANES + lane] = x
            buf[(S64 + LAST_TS) * LANES + lane] = _fmax(last_ts, t)
            buf[(S32 + LAST_SCORE) * LANES + lane] = r32(combined)


@inline
def _holt_weights(p: Params, dt: float, expected: float) -> tuple[float, float]:
    """The Holt level and trend weights of a gap ``dt`` (ms): one expected period is the
    usual case (precomputed); any other gap weighs by its length (``exp``, which the
    lane loop has no vector form of, so it is computed here, per lane)."""
    unit = dt if math.isnan(expected) else expected
    if dt == unit and unit > 0.0:
        return p.holt_a, p.holt_b
    if not math.isnan(dt) and unit > 0.0:
        la = 1.0 - math.exp(-dt / (unit * p.trend_level_periods))
        lb = 1.0 - math.exp(-dt / (unit * p.trend_periods))
        return la, lb
    return 1.0, 0.0


@inline
def _load_lane(
    buf: FloatArray, lane: int, s: int, f64: FloatArray, f32: Any, mtab: FloatArray, m: int
) -> None:
    """Series ``s`` (metric ``m``) into lane ``lane``: its state rows and catalogue row."""
    row, met = _u(s), _u(m)
    for c in range(F64_COLUMNS):
        buf[_u((S64 + c) * LANES + lane)] = f64[row, _u(c)]
    for c in range(F32_COLUMNS):
        buf[_u((S32 + c) * LANES + lane)] = f32[row, _u(c)]
    for c in range(M_COLUMNS):
        buf[_u((MET + c) * LANES + lane)] = mtab[met, _u(c)]


@inline
def _store_lane(buf: FloatArray, lane: int, s: int, f64: FloatArray, f32: Any) -> None:
    """Lane ``lane``'s state back into series ``s``'s rows (float32 columns are already
    rounded: the store is exact)."""
    row = _u(s)
    for c in range(F64_COLUMNS):
        f64[row, _u(c)] = buf[_u((S64 + c) * LANES + lane)]
    for c in range(F32_COLUMNS):
        f32[row, _u(c)] = buf[_u((S32 + c) * LANES + lane)]


@inline
def _move_lane(buf: FloatArray, src: int, dst: int) -> None:
    """Every column of lane ``src`` into lane ``dst`` (the lanes close up at the end)."""
    for c in range(COLUMNS):
        buf[_u(c * LANES + dst)] = buf[_u(c * LANES + src)]


@inline
def _rare_onset(buf: FloatArray, lane: int, p: Params) -> float:
    """The onset score of lane ``lane``'s reading where a tail probability may report
    or a coarse block ended (``OUT_RARE``): their evidence, then the decision, which the
    lane loop left to this."""
    evidence = buf[OUT_EVIDENCE * LANES + lane]
    bar = buf[OUT_BAR * LANES + lane]
    floor = bar if bar > p.report_min else p.report_min
    for c in range(3):
        excess = buf[(OUT_TAIL + c) * LANES + lane]
        if not math.isnan(excess):
            tail = _tail(excess, buf[(OUT_TAIL_VAR + c) * LANES + lane], p)
            evidence = _fmax(evidence, tail_decades(tail))
    for j in range(COARSE_SCALES):
        count = buf[(OUT_BLOCK + j) * LANES + lane]
        if count > 0.0:
            got = _block_end(
                buf,
                lane,
                j,
                buf[(OUT_BLOCK_SUM + j) * LANES + lane] / count,
                buf[(OUT_BLOCK_STEPS + j) * LANES + lane] / count,
                buf[(MET + M_SENSOR) * LANES + lane],
                buf[OUT_WARM * LANES + lane] > 0.0,
                floor,
                p,
            )
            evidence = _fmax(evidence, got)
    onset, reported, report_ref, since_report = _onset_decision(
        evidence,
        bar,
        buf[OUT_REF * LANES + lane],
        buf[OUT_SINCE * LANES + lane],
        buf[OUT_LEARNABLE * LANES + lane] > 0.0,
        buf[(S32 + REPORTED) * LANES + lane],
        p,
    )
    buf[(S32 + REPORTED) * LANES + lane] = reported
    buf[(S32 + REPORT_REF) * LANES + lane] = report_ref
    buf[(S32 + SINCE_REPORT) * LANES + lane] = since_report
    return onset


@jit
def _lane_events(events: FloatArray, used: int, buf: FloatArray, lane: int, i: int) -> int:
    """The event records of lane ``lane``'s reading (grouped row ``i``), after the lane
    loop flagged a transition (``OUT_EVENT``), at ``events[used:]``; returns the records
    used. Not inlined: it is rare."""
    since_ms = buf[OUT_SINCE_MS * LANES + lane]
    for k in range(K):
        code = buf[(OUT_EVENT + k) * LANES + lane]
        if code == 0.0:
            continue
        z = buf[(OUT_Z + k) * LANES + lane]
        ref = buf[(OUT_REFS + k) * LANES + lane]
        q = buf[(OUT_SC + k) * LANES + lane]
        if code == STARTS:
            start = buf[(S64 + EV_START + k) * LANES + lane]
            _record(events, used, i, k, 1.0, start, q, z, ref, since_ms)
            used += 1
        elif code == ENDS:
            start = buf[(S64 + EV_START + k) * LANES + lane]
            peak = buf[(S32 + EV_PEAK + k) * LANES + lane]
            _record(events, used, i, k, 0.0, start, peak, z, ref, since_ms)
            used += 1
        else:  # the reading that ends a silence: start and end
            start = buf[OUT_DROP_START * LANES + lane]
            _record(events, used, i, k, 1.0, start, q, z, ref, since_ms)
            _record(events, used + 1, i, k, 0.0, start, q, z, ref, since_ms)
            used += 2
    return used


@jit
def _steps(
    rows: IntArray,
    origin: OriginArray,
    series: IntArray,
    metric: Any,
    mtab: FloatArray,
    f64: FloatArray,
    f32: Any,
    tod: Any,
    p: Params,
    starts: IntArray,
    order: IntArray,
    buf: FloatArray,
    lane_slot: IntArray,
    lane_pos: IntArray,
    lane_end: IntArray,
    lane_bin: IntArray,
    progress: IntArray,
    comps: FloatArray,
    want_comps: bool,
    events: FloatArray,
    used: int,
    switches: Switches,
) -> int:
    """``score_batch``'s steps, from where ``progress`` (series taken, lanes in use,
    1 when done) and the lane arrays left them, taking series in ``order`` (indices of
    ``starts``), until the batch is done or ``events``
    has no room for another step's records; returns the records used. The records array
    is never replaced in here: a rebound array costs reference counting at every
    reading."""
    bins = int(p.tod_bins)
    bin_ms = DAY_MS / bins
    offset = int(p.utc_offset_ms)
    values = rows.view(np.float64)  # the ROW_X column holds float64 bits
    n_series = starts.shape[0] - 1
    taken = progress[0]
    width = progress[1]
    while True:
        if used + LANES * 2 * K > events.shape[0]:
            break  # the caller grows the records array and resumes
        # --- each lane's next reading; a lane whose series is done takes the next one.
        for lane in range(width):
            if lane_slot[_u(lane)] >= 0 and lane_pos[_u(lane)] == lane_end[_u(lane)]:
                s = lane_slot[_u(lane)]
                _store_lane(buf, lane, s, f64, f32)
                tb = lane_bin[_u(lane)]  # and the time-of-day bin it holds (written out here
                if tb >= 0:  # and below: a helper taking the arrays would cost reference
                    tod[_u(s), _u(tb)] = buf[_u(IN_TOD * LANES + lane)]  # counting at every call)
                    tod[_u(s), _u(tb + 1)] = buf[_u((IN_TOD + 1) * LANES + lane)]
                    tod[_u(s), _u(tb + 2)] = buf[_u((IN_TOD + 2) * LANES + lane)]
                lane_slot[_u(lane)] = -1
                lane_bin[_u(lane)] = -1
                buf[_u(IN_BIN * LANES + lane)] = np.nan  # no bin held
            if lane_slot[_u(lane)] < 0 and taken < n_series:
                q = order[_u(taken)]
                s = series[_u(q)]
                _load_lane(buf, lane, s, f64, f32, mtab, metric[_u(s)])
                lane_slot[_u(lane)] = s
                lane_pos[_u(lane)] = starts[_u(q)]
                lane_end[_u(lane)] = starts[_u(q + 1)]
                taken += 1
                if taken + PREFETCH_AHEAD < n_series:  # a later series' state, meanwhile
                    q = order[taken + PREFETCH_AHEAD]
                    at = starts[_u(q)]
                    for row in range(at, starts[_u(q + 1)], 4):
                        prefetch_row(rows, row)  # its readings: four rows a cache line
                    nxt = series[_u(q)]
                    prefetch_row(f64, nxt)
                    prefetch_row(f32, nxt)
                    tb = ((rows[_u(at), ROW_TS] + offset) % DAY_MS) * bins // DAY_MS * TOD_WIDTH
                    prefetch_item(tod, nxt, tb)
                    prefetch_item(tod, nxt, tb + TOD_WIDTH - 1)  # a bin may cross a line
        # Lanes left without a series once the batch runs out: the last lane fills the gap.
        lane = 0
        while lane < width and taken == n_series:
            if lane_slot[_u(lane)] >= 0:
                lane += 1
                continue
            width -= 1
            if lane < width:
                _move_lane(buf, width, lane)
                lane_slot[_u(lane)] = lane_slot[_u(width)]
                lane_pos[_u(lane)] = lane_pos[_u(width)]
                lane_end[_u(lane)] = lane_end[_u(width)]
                lane_bin[_u(lane)] = lane_bin[_u(width)]
                lane_slot[_u(width)] = -1
        if width == 0:
            progress[2] = 1
            break
        for lane in range(width):
            i = lane_pos[_u(lane)]
            s = lane_slot[_u(lane)]
            t_ms = rows[_u(i), ROW_TS]
            t = float(t_ms)
            buf[_u(_X + lane)] = values[_u(i), ROW_X]
            buf[_u(_T + lane)] = t
            # The lane holds the time-of-day bin of its last reading, and the span of time
            # that falls in it: inside, no bin to compute (two signed divisions).
            if not buf[_u(IN_BIN * LANES + lane)] <= t < buf[_u((IN_BIN + 1) * LANES + lane)]:
                local = t_ms + offset
                t_day = local % DAY_MS
                k = t_day * bins // DAY_MS
                midnight = t_ms - t_day
                buf[_u(IN_BIN * LANES + lane)] = midnight + (k * DAY_MS + bins - 1) // bins
                buf[_u((IN_BIN + 1) * LANES + lane)] = (
                    midnight + ((k + 1) * DAY_MS + bins - 1) // bins
                )
                tb = k * TOD_WIDTH
                if tb != lane_bin[_u(lane)]:
                    held = lane_bin[_u(lane)]
                    if held >= 0:
                        tod[_u(s), _u(held)] = buf[_u(IN_TOD * LANES + lane)]
                        tod[_u(s), _u(held + 1)] = buf[_u((IN_TOD + 1) * LANES + lane)]
                        tod[_u(s), _u(held + 2)] = buf[_u((IN_TOD + 2) * LANES + lane)]
                    lane_bin[_u(lane)] = tb
                    buf[_u(IN_TOD * LANES + lane)] = tod[_u(s), _u(tb)]
                    buf[_u((IN_TOD + 1) * LANES + lane)] = tod[_u(s), _u(tb + 1)]
                    buf[_u((IN_TOD + 2) * LANES + lane)] = tod[_u(s), _u(tb + 2)]
            period_ms = buf[_u((MET + M_PERIOD) * LANES + lane)]
            expected = (
                buf[_u((S64 + PERIOD) * LANES + lane)] if math.isnan(period_ms) else period_ms
            )
            dt = t - buf[_u((S64 + LAST_TS) * LANES + lane)]
            dt = max(dt, 0.0)
            if not (
                dt == buf[_u(IN_GAP * LANES + lane)]
                and expected == buf[_u((IN_GAP + 1) * LANES + lane)]
            ):
                la, lb = _holt_weights(p, dt, expected)  # not the same gap as the last
                buf[_u(IN_LA * LANES + lane)] = la
                buf[_u(IN_LB * LANES + lane)] = lb
                buf[_u(IN_GAP * LANES + lane)] = dt
                buf[_u((IN_GAP + 1) * LANES + lane)] = expected

        _lane_step(buf, width, p, bin_ms, switches)

        # --- the scalar rest of each lane's reading.
        for lane in range(width):
            i = lane_pos[_u(lane)]
            if buf[_u(OUT_RARE * LANES + lane)] > 0.0:  # a tail or a block end: decided here
                values[_u(i), ROW_ONSET] = _rare_onset(buf, lane, p)
            else:
                values[_u(i), ROW_ONSET] = buf[_u(OUT_ONSET * LANES + lane)]
            values[_u(i), ROW_SCORE] = buf[_u(OUT_SCORE * LANES + lane)]
            if want_comps:
                at = origin[_u(i)]
                for k in range(K):
                    comps[k, at] = buf[_u((OUT_SC + k) * LANES + lane)]
            if buf[_u(OUT_EVENTS * LANES + lane)] > 0.0:
                used = _lane_events(events, used, buf, lane, i)
            lane_pos[_u(lane)] = i + 1
    progress[0] = taken
    progress[1] = width
    return used


LONGEST_FIRST_MAX = 64 * LANES
"""Up to this many series a batch's series go to the lanes longest first."""


@jit
def _series_order(starts: IntArray) -> IntArray:
    """The order the lanes take a batch's series in. Few series: the longest first, so
    that the lanes run out together (NAB's 51 files in file order kept 77 % of the lanes
    busy, longest first 99 %). Many: as grouped, which walks the state tables in slot
    order (and the tail of a large batch is short)."""
    n_series = starts.shape[0] - 1
    if n_series > LONGEST_FIRST_MAX:
        return np.arange(n_series)
    return np.argsort(-(starts[1:] - starts[:-1]), kind="mergesort")


@jit
def score_batch(
    rows: IntArray,
    origin: OriginArray,
    metric: Any,
    mtab: FloatArray,
    f64: FloatArray,
    f32: Any,
    tod: Any,
    p: Params,
    out: FloatArray,
    comps: FloatArray,
    want_comps: bool,
    starts: IntArray,
    series: IntArray,
    switches: Switches,
) -> FloatArray:
    """Score a grouped batch (``group``) and fold it into the state; fills ``out[i]``
    (the max of the sub-detectors, the onset score) and, if ``want_comps``,
    ``comps[k, i]`` at each row's input index ``i`` (``origin``). Returns the event
    records (``EVENT_FIELDS`` columns; their reading index is the grouped row's).
    ``starts`` are where each series' rows begin and ``series`` their slots
    (``group``); each row's scores take
    the place of its reading (``ROW_SCORE``, ``ROW_ONSET``); ``switches`` are
    ``switches_of(p)``.

    ``LANES`` series at a time, one per lane (``lanes.py``): each step gives every lane
    its series' next reading (a lane whose series is done writes its state back and
    takes the next series; a new time-of-day bin or Holt weights where the reading
    needs them), runs the vectorised lane loop (``_lane_step``, which also decides the
    onset of most readings) and then the scalar rest of each lane's reading: its tail
    probabilities and coarse block ends with the onset decision of those readings
    (``_rare_onset``), and its event records.
    """
    n_rows = rows.shape[0]
    n_series = starts.shape[0] - 1
    order = _series_order(starts)
    buf = np.zeros(COLUMNS * LANES)
    buf[IN_GAP * LANES : (IN_GAP + 2) * LANES] = np.nan  # no Holt weights computed yet
    buf[IN_BIN * LANES : (IN_BIN + 1) * LANES] = np.nan  # no time-of-day bin held
    lane_slot = np.full(LANES, -1, dtype=np.int64)
    lane_pos = np.zeros(LANES, dtype=np.int64)
    lane_end = np.zeros(LANES, dtype=np.int64)
    lane_bin = np.full(LANES, -1, dtype=np.int64)  # the time-of-day bin a lane holds
    progress = np.array([0, min(LANES, n_series), 0])  # series taken, lanes in use, done
    events = np.empty((4 * LANES * K, EVENT_FIELDS))  # room for two steps' records
    used = 0
    values = rows.view(np.float64)
    while True:
        used = _steps(
            rows,
            origin,
            series,
            metric,
            mtab,
            f64,
            f32,
            tod,
            p,
            starts,
            order,
            buf,
            lane_slot,
            lane_pos,
            lane_end,
            lane_bin,
            progress,
            comps,
            want_comps,
            events,
            used,
            switches,
        )
        if progress[2]:
            break
        grown = np.empty((2 * events.shape[0], EVENT_FIELDS))
        grown[:used] = events[:used]
        events = grown
    # Scores in the input order: a pass of its own (a store to a random row inside the
    # per-reading loop stalls it on the cache miss; here the misses overlap, and the
    # row of the reading ``PLACE_AHEAD`` on is asked for meanwhile), both scores of a
    # row in one cache line.
    for i in range(n_rows):
        if i + PLACE_AHEAD < n_rows:
            prefetch_item_for_write(out, origin[i + PLACE_AHEAD], 0)
        at = _u(origin[i])
        out[at, 0] = values[i, ROW_SCORE]
        out[at, 1] = values[i, ROW_ONSET]
    return events[:used]
