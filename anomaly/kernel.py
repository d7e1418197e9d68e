"""The detector's per-reading work: one kernel compiled with numba.

``score_batch`` walks a batch grouped by series (``group``), and for each reading runs
every sub-detector, the onset calibration and the event decisions against the series'
state row (``anomaly/layout.py``), which stays in the cache while the series' readings
go by. The same source runs interpreted under ``NUMBA_DISABLE_JIT=1``; the tests use
that as the reference, so it keeps to what both agree on: float64 scalars (float32
state is read through ``float()``), no division by zero, no ``min``/``max`` on NaN
(``_fmin``/``_fmax`` have numpy's NaN rules), ``math`` functions inside their domains.

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
from anomaly.prefetch import prefetch_item, prefetch_row

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PREFETCH_AHEAD = 4
"""How many readings ahead the state of a series is prefetched."""

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
_EXCURSION_RISE = 0.5
"""How far a larger excursion lifts a series' routine excursion size (EXC_POS/NEG)
towards it: halfway, so a size is routine once it has come back, not after one spike."""


def _sources_digest() -> str:
    """A digest of the sources the compiled code depends on. numba checks only the
    timestamp of the file that defines a function, while the kernel bakes in the column
    numbers of ``layout.py`` (and inlines ``prefetch.py``): keyed by all, a changed layout
    compiles afresh instead of running stale code."""
    digest = hashlib.sha256()
    for name in ("kernel.py", "layout.py", "prefetch.py"):
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
    """numpy's ``fmax``: NaN loses."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return a if a >= b else b


@inline
def _fmin(a: float, b: float) -> float:
    """numpy's ``fmin``: NaN loses."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return a if a <= b else b


@inline
def squash(z: float, z_half: float) -> float:
    """``z^4 / (z^4 + z_half^4)`` for ``z >= 0``; NaN -> 0."""
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


ROW_SLOT, ROW_TS, ROW_X, ROW_AT = 0, 1, 2, 3
"""The columns of a grouped row (``group``): slot, time, the value's float64 bits, the
row's index in the input batch."""
ROW_FIELDS = 4


@jit
def _pack(rows: IntArray, at: int, slot: int, t: int, x_bits: int, row: int) -> None:
    rows[at, ROW_SLOT] = slot
    rows[at, ROW_TS] = t
    rows[at, ROW_X] = x_bits
    rows[at, ROW_AT] = row


@jit
def _by_slot(slots: IntArray, ts: IntArray, x_bits: IntArray, size: int) -> IntArray:
    """The rows placed in slot order, stable (a counting sort): each reading is written
    once, as one 32-byte record, where its series' rows go."""
    n = slots.shape[0]
    starts = np.zeros(size + 1, dtype=np.int64)
    for i in range(n):
        starts[slots[i] + 1] += 1
    for d in range(size):
        starts[d + 1] += starts[d]
    rows = np.empty((n, ROW_FIELDS), dtype=np.int64)
    for i in range(n):
        s = slots[i]
        _pack(rows, starts[s], s, ts[i], x_bits[i], i)
        starts[s] += 1
    return rows


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
    for i in range(n):
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
def group(slots: IntArray, ts: IntArray, xs: FloatArray, size: int) -> IntArray:
    """The batch as grouped rows (``ROW_*`` columns), by series and in each series in
    time order (ties keep the input order).

    A batch already in that order is packed as it is. Otherwise a stable sort by slot:
    a counting sort that places each row once (``_by_slot``) or, for a small batch of
    very many series, a radix sort of indices (``_radix_by_slot``) and a gather; then a
    stable time sort only inside series that arrived out of time order. One record per
    row, not four arrays: a row placed at random costs one cache miss, not four.
    """
    n = slots.shape[0]
    x_bits = xs.view(np.int64)
    grouped = True
    for i in range(1, n):
        if slots[i] < slots[i - 1] or (slots[i] == slots[i - 1] and ts[i] < ts[i - 1]):
            grouped = False
            break
    if grouped:
        rows = np.empty((n, ROW_FIELDS), dtype=np.int64)
        for i in range(n):
            _pack(rows, i, slots[i], ts[i], x_bits[i], i)
        return rows
    # The counting sort's cost grows with the series, the radix sort's with the readings:
    # a small batch of a large city (the live path) takes the radix sort.
    if size <= COUNTING_MAX and n * 8 >= size:
        rows = _by_slot(slots, ts, x_bits, size)
    else:
        idx = _radix_by_slot(slots, size)
        rows = np.empty((n, ROW_FIELDS), dtype=np.int64)
        for j in range(n):
            i = idx[j]
            _pack(rows, j, slots[i], ts[i], x_bits[i], i)
    # Readings of one series out of time order: a stable sort of that segment by time.
    start = 0
    while start < n:
        end = start + 1
        ordered = True
        while end < n and rows[end, ROW_SLOT] == rows[start, ROW_SLOT]:
            if rows[end, ROW_TS] < rows[end - 1, ROW_TS]:
                ordered = False
            end += 1
        if not ordered:
            by_time = np.argsort(rows[start:end, ROW_TS], kind="mergesort")
            segment = rows[start:end].copy()
            for j in range(end - start):
                rows[start + j] = segment[by_time[j]]
        start = end
    return rows


# ---------------------------------------------------------------- the kernel
@inline
def _calibrate(
    cal: tuple[float, float, float, float, float],
    z: float,
    floor: float,
    min_history: float,
    p: Params,
) -> tuple[float, float, float, float, float, float]:
    """Decades of evidence of statistic ``z`` against this series' own history of it,
    ``cal`` (long mean, long variance, short mean, count, record of the short mean),
    and that history with ``z`` folded in.

    ``log1p|z|`` (the log tames heavy tails) is averaged over a few readings and
    compared with its long-run mean and spread (HTM's anomaly likelihood). Evidence
    counts only where that short average beats its own record, which decays towards
    the long-run mean: a series that routinely shows z of some size (a daily spike, a
    bursty count) reports it the first time, not every time. Evidence that could not
    exceed ``floor`` (no report would follow) comes out 0 without its square root and
    logarithms. Scalars in and out: a state table passed to an inlined helper would
    cost two atomic reference-count operations per call.
    """
    mean, var, prev, count, record = cal
    raw = abs(z)
    if not raw >= 0.0:
        raw = 0.0
    elif raw > 1e12:
        raw = 1e12
    raw = math.log(1.0 + raw)  # log1p costs 2.5 times as much; a tiny |z| does not matter
    short = raw
    if count > 0.0:
        short = prev + p.onset_short_alpha * (raw - prev)
    d = short - mean
    decades = 0.0
    if count >= min_history and d > 0.0 and short > record:
        sd = math.sqrt(var)
        sd = max(sd, p.onset_min_sd)
        zz = d / sd
        # An upper bound of the tail (>= it by 0.07 decades) spares the logs mostly.
        if (0.5 * zz * zz + 0.4 * zz + 1.16) > floor * _LN10:
            decades = tail_decades(zz)
    new_record = short
    if count >= 1.0:
        decayed = record - (record - mean) * p.record_alpha
        if decayed > short:
            new_record = decayed
    a = p.onset_long_alpha
    if (count + 1.0) * p.onset_long_alpha < 1.0:  # the running mean's weight is larger
        a = 1.0 / (count + 1.0)
    ad = a * d
    return decades, mean + ad, (1.0 - a) * (var + ad * d), short, count + 1.0, new_record


@jit
def _calibrate_at(
    f32: Any, s: int, col: int, z: float, floor: float, min_history: float, p: Params
) -> float:
    """``_calibrate`` on the state table's calibration block ``col`` (off the hot path)."""
    base = CAL + CAL_WIDTH * col
    cal = (
        float(f32[s, base]),
        float(f32[s, base + 1]),
        float(f32[s, base + 2]),
        float(f32[s, base + 3]),
        float(f32[s, base + 4]),
    )
    decades, mean, var, short, count, record = _calibrate(cal, z, floor, min_history, p)
    f32[s, base] = mean
    f32[s, base + 1] = var
    f32[s, base + 2] = short
    f32[s, base + 3] = count
    f32[s, base + 4] = record
    return decades


@jit
def _extreme(v: float, lo: float, hi: float, tolerance: float, decades: float) -> float:
    """Evidence of a new extreme: ``v`` beyond the range ``[lo, hi]`` by more than
    ``tolerance`` of its width is ``decades``, plus as much again for each doubling of
    the distance beyond it (a wild value outranks a marginal record). NaN range: 0."""
    width = hi - lo
    if not width > 0.0:
        return 0.0
    margin = tolerance * width
    beyond = _fmax(v - hi, lo - v)
    if not beyond > margin:
        return 0.0
    if not margin > 0.0:
        return decades
    return decades * (1.0 + math.log2(beyond / margin))


@jit
def _block_end(
    f32: Any,
    s: int,
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
    single reading shows. Not inlined: it runs
    once a block, and the per-reading loop stays small enough for the instruction cache."""
    base = COARSE + COARSE_WIDTH * j
    blocks = float(f32[s, base + CB_BLOCKS])
    level = float(f32[s, base + CB_LEVEL])
    dev = float(f32[s, base + CB_DEV])
    lo = float(f32[s, base + CB_MIN])
    hi = float(f32[s, base + CB_MAX])
    evidence = 0.0
    if not math.isnan(level):
        scale = _scale(dev, level, p, sensor, math.nan)
        if blocks >= 4.0 and warm:
            z = (mean - level) / scale
            evidence = _calibrate_at(f32, s, CAL_COARSE + j, z, floor, p.coarse_min_history, p)
        a = 1.0 / (blocks + 1.0)
        a = max(a, p.coarse_alpha[j])
        bound = p.clip_sigma * scale if blocks >= 4.0 else math.inf
        new_level, new_dev, _ = _clipped_step(mean, level, dev, a, a, bound)
        f32[s, base + CB_LEVEL] = new_level
        f32[s, base + CB_DEV] = new_dev
    else:
        f32[s, base + CB_LEVEL] = mean
        f32[s, base + CB_DEV] = 0.0
    if blocks >= p.coarse_min_blocks and warm:
        evidence = _fmax(evidence, _extreme(mean, lo, hi, p.coarse_tolerance, p.extreme_decades))
    f32[s, base + CB_MIN] = _fmin(lo, mean)
    f32[s, base + CB_MAX] = _fmax(hi, mean)
    if p.coarse_dispersion:
        step_lo = float(f32[s, base + CB_DMIN])
        step_hi = float(f32[s, base + CB_DMAX])
        if blocks >= p.coarse_min_blocks and warm:
            got = _extreme(spread, step_lo, step_hi, p.coarse_tolerance, p.extreme_decades)
            evidence = _fmax(evidence, got)
        f32[s, base + CB_DMIN] = _fmin(step_lo, spread)
        f32[s, base + CB_DMAX] = _fmax(step_hi, spread)
    f32[s, base + CB_BLOCKS] = blocks + 1.0
    return evidence


@jit
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
) -> FloatArray:
    """Append one transition record (growing the buffer as needed). Not inlined: it is
    rare, and the per-reading loop stays small."""
    if used + 1 > events.shape[0]:
        grown = np.empty((2 * events.shape[0], EVENT_FIELDS))
        grown[:used] = events[:used]
        events = grown
    events[used, 0] = i
    events[used, 1] = k
    events[used, 2] = active
    events[used, 3] = start
    events[used, 4] = peak
    events[used, 5] = z
    events[used, 6] = ref
    events[used, 7] = since_ms
    return events


@jit
def score_batch(
    rows: IntArray,
    metric: Any,
    mtab: FloatArray,
    f64: FloatArray,
    f32: Any,
    tod: Any,
    p: Params,
    scores: FloatArray,
    onset: FloatArray,
    comps: FloatArray,
    want_comps: bool,
) -> FloatArray:
    """Score a grouped batch (``group``) in its order and fold it into the state; fills
    ``scores`` (max of the sub-detectors), ``onset`` and, if ``want_comps``,
    ``comps[k, i]`` at each row's input index (``ROW_AT``). Returns the event records
    (``EVENT_FIELDS`` columns; their reading index is the grouped row's)."""
    events = np.empty((64, EVENT_FIELDS))
    n_ev = 0
    sc = np.zeros(K)
    zs = np.zeros(K)
    refs = np.zeros(K)
    judged = np.zeros(K, dtype=np.bool_)
    bins = int(p.tod_bins)
    bin_ms = DAY_MS / bins
    offset = int(p.utc_offset_ms)
    half = p.onset_half
    n_rows = rows.shape[0]
    values = rows.view(np.float64)  # the ROW_X column holds float64 bits
    g_scores = np.empty(n_rows)
    g_onset = np.empty(n_rows)
    ahead = 0  # the row whose series' state was last asked for
    for i in range(n_rows):
        s = rows[i, ROW_SLOT]
        # The state of the series a few readings ahead, while this one is worked on.
        if ahead < i + PREFETCH_AHEAD and ahead + 1 < n_rows:
            ahead += 1
            nxt = rows[ahead, ROW_SLOT]
            if nxt != rows[ahead - 1, ROW_SLOT]:
                prefetch_row(f64, nxt)
                prefetch_row(f32, nxt)
                tb_next = ((rows[ahead, ROW_TS] + offset) % DAY_MS) * bins // DAY_MS * TOD_WIDTH
                prefetch_item(tod, nxt, tb_next)
                prefetch_item(tod, nxt, tb_next + TOD_WIDTH - 1)  # a bin may cross a line
        t_ms = rows[i, ROW_TS]
        t = float(t_ms)
        x = values[i, ROW_X]
        m = metric[s]
        learnable = not math.isnan(x) and abs(x) != math.inf
        if not learnable:
            x = math.nan
        statistical = mtab[m, M_STAT] > 0.0
        n = f64[s, N]
        period_ms = mtab[m, M_PERIOD]
        learned = f64[s, PERIOD]
        expected = learned if math.isnan(period_ms) else period_ms
        last_ts = f64[s, LAST_TS]
        last_x = f64[s, LAST_X]
        first = math.isnan(last_ts)
        dt = t - last_ts  # NaN for a first reading
        dt = max(dt, 0.0)
        hlevel = f64[s, HLEVEL]
        trend = float(f32[s, TREND])
        pred = hlevel + trend * (dt * _PER_HOUR)
        learn_ok = learnable and statistical
        if x == mtab[m, M_OFF]:
            # Equipment switched off by design (a fan its controller stopped): a state,
            # not a level; the statistical detectors neither judge nor learn it.
            learn_ok = False
        warm = n >= p.warmup
        judge_ok = warm and learn_ok
        inv_n1 = 1.0 / (n + 1.0) if n < p.exact_until else 0.0
        sensor = mtab[m, M_SENSOR]
        for k in range(K):
            sc[k] = 0.0
            zs[k] = 0.0
            refs[k] = math.nan
            judged[k] = False

        # --- limits, with hysteresis: entered at a limit, left a margin inside it.
        lim_prev = float(f32[s, LIM_LEVEL])
        lim_new = lim_prev
        if p.enabled[LIMITS]:
            if learnable:
                limits = (
                    mtab[m, M_WARN_LOW],
                    mtab[m, M_WARN_HIGH],
                    mtab[m, M_CRIT_LOW],
                    mtab[m, M_CRIT_HIGH],
                )
                outer = _limit_level(x, limits, 0.0)
                inner = _limit_level(x, limits, mtab[m, M_MARGIN])
                held = lim_prev if lim_prev < inner else inner
                lim_new = outer if outer > held else held
                if lim_new >= 2.0:
                    sc[LIMITS] = 1.0
                elif lim_new >= 1.0:
                    sc[LIMITS] = p.limit_warn_score
            zs[LIMITS] = lim_new

        # --- adaptive baseline: robust z against the outlier-protected EWMA level.
        base_level = f64[s, BASE_LEVEL]
        base_dev = float(f32[s, BASE_DEV])
        base_slow = float(f32[s, BASE_SLOW])
        base_scale = _scale(base_dev, base_level, p, sensor, base_slow)
        z_base = (x - base_level) / base_scale
        # After the baseline accepted a new level (a run of outliers), the reading is also
        # judged against the level before it, for a while: a flood that lifts duct
        # moisture for an hour stays an anomaly though the baseline followed it.
        hold_ref = f64[s, HOLD_REF]
        z_hold = math.nan  # nothing held
        if not math.isnan(hold_ref):
            z_hold = (x - hold_ref) / float(f32[s, HOLD_SCALE])
        if p.enabled[BASELINE]:
            judged[BASELINE] = judge_ok
            if abs(z_hold) > abs(z_base):
                zs[BASELINE] = z_hold
                refs[BASELINE] = hold_ref
            else:
                zs[BASELINE] = z_base
                refs[BASELINE] = base_level
            if judge_ok:
                sc[BASELINE] = squash(abs(zs[BASELINE]), p.z_half)

        # --- time of day (local time): the level and scale of this hour's bin.
        tb = ((t_ms + offset) % DAY_MS) * bins // DAY_MS * TOD_WIDTH
        tod_level = float(tod[s, tb])
        tod_dev = float(tod[s, tb + 1])
        tod_count = float(tod[s, tb + 2])
        tod_slow = float(f32[s, TOD_SLOW])
        if p.enabled[TIME_OF_DAY]:
            z_tod = (x - tod_level) / _scale(tod_dev, tod_level, p, sensor, tod_slow)
            ok = (
                judge_ok
                and tod_count >= p.tod_min_count
                and t - f64[s, FIRST_TS] >= p.tod_min_days * DAY_MS
            )
            zs[TIME_OF_DAY] = z_tod
            refs[TIME_OF_DAY] = tod_level
            judged[TIME_OF_DAY] = ok
            if ok:
                sc[TIME_OF_DAY] = squash(abs(z_tod), p.z_half)

        # --- level shift: two-sided CUSUM of the clipped residual against the forecast.
        cu_dev = float(f32[s, CUSUM_DEV])
        cu_scale = _scale(cu_dev, pred, p, sensor, math.nan)
        resid = (x - pred) / cu_scale
        if resid > p.cusum_clip:
            resid = p.cusum_clip
        elif resid < -p.cusum_clip:
            resid = -p.cusum_clip
        if math.isnan(resid) or not warm:
            resid = 0.0
        pos = float(f32[s, CUSUM_POS]) + resid - p.cusum_k
        if not pos > 0.0:
            pos = 0.0
        neg = float(f32[s, CUSUM_NEG]) - resid - p.cusum_k
        if not neg > 0.0:
            neg = 0.0
        stat = pos if pos >= neg else neg
        if p.enabled[LEVEL_SHIFT]:
            refs[LEVEL_SHIFT] = pred
            if stat > 0.0:
                zs[LEVEL_SHIFT] = (stat if pos >= neg else -stat) * p.shift_gain / p.z_on
                if judge_ok:
                    sc[LEVEL_SHIFT] = squash(p.shift_gain * stat, p.z_half)
            judged[LEVEL_SHIFT] = sc[LEVEL_SHIFT] > 0.0

        # --- flatline: a run of equal readings, weighed by this series' repeat rate.
        same = x == last_x
        flat_run = float(f32[s, FLAT_RUN]) + 1.0 if same else 0.0
        flat_rate = float(f32[s, FLAT_RATE])
        if p.enabled[FLATLINE]:
            zs[FLATLINE] = flat_run + 1.0
            refs[FLATLINE] = last_x
            if (
                flat_run >= p.flatline_min_run - 1.0
                and judge_ok
                and x != mtab[m, M_VALID_MIN]
                and x != mtab[m, M_VALID_MAX]
            ):
                rate = flat_rate
                if rate < 1e-3:
                    rate = 1e-3
                elif rate > 0.999:
                    rate = 0.999
                decades = flat_run * -math.log10(rate)
                sc[FLATLINE] = squash(p.flat_gain * decades, p.z_half)
            judged[FLATLINE] = sc[FLATLINE] > 0.0

        # --- dropout: the gap before this reading, in expected periods.
        if p.enabled[DROPOUT]:
            gap = math.nan
            if dt == expected:  # the usual gap
                gap = 1.0
            elif expected > 0.0:
                gap = dt / expected
            zs[DROPOUT] = gap
            refs[DROPOUT] = expected
            if not math.isnan(gap) and learnable and (not math.isnan(period_ms) or warm):
                sc[DROPOUT] = squash(p.drop_gain * gap, p.z_half)
            judged[DROPOUT] = sc[DROPOUT] > 0.0

        combined = 0.0
        for k in range(K):
            combined = max(combined, sc[k])
        g_scores[i] = combined
        if want_comps:
            at = rows[i, ROW_AT]
            for k in range(K):
                comps[k, at] = sc[k]

        # --- onset: evidence in decades, reported when it stands out from the last report.
        since = float(f32[s, SINCE_REPORT]) + 1.0
        ref = float(f32[s, REPORT_REF]) * p.onset_decay
        bar = ref * p.escalate
        if since <= p.refractory:
            # Just after a report only a much stronger one: no trail of escalating rows.
            strong = float(f32[s, REPORTED]) * p.refractory_escalate
            bar = max(bar, strong)
        floor = bar if bar > p.report_min else p.report_min  # what would report
        evidence = 0.0
        if learn_ok:
            lo = f64[s, RANGE_MIN]
            hi = f64[s, RANGE_MAX]
            if judge_ok and p.extreme_decades != 0.0:
                evidence = _extreme(x, lo, hi, p.extreme_tolerance, p.extreme_decades)
            f64[s, RANGE_MIN] = _fmin(lo, x)
            f64[s, RANGE_MAX] = _fmax(hi, x)
            step_abs = 0.0 if math.isnan(last_x) else abs(x - last_x)
            for j in range(COARSE_SCALES):  # the running blocks of the coarse scales
                cb = COARSE + COARSE_WIDTH * j
                total = float(f32[s, cb + CB_SUM]) + x
                steps = float(f32[s, cb + CB_DSUM]) + step_abs
                count = float(f32[s, cb + CB_COUNT]) + 1.0
                if count < p.coarse_blocks[j]:
                    f32[s, cb + CB_SUM] = total
                    f32[s, cb + CB_DSUM] = steps
                    f32[s, cb + CB_COUNT] = count
                    continue
                f32[s, cb + CB_SUM] = 0.0
                f32[s, cb + CB_DSUM] = 0.0
                f32[s, cb + CB_COUNT] = 0.0
                got = _block_end(f32, s, j, total / count, steps / count, sensor, warm, floor, p)
                evidence = _fmax(evidence, got)
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
            ex_pos = float(f32[s, EXC_POS]) * keep
            ex_neg = float(f32[s, EXC_NEG]) * keep
            if res > 0.0:
                routine = res <= ex_pos * (1.0 + p.excursion_tolerance)
                if res > ex_pos:
                    ex_pos += _EXCURSION_RISE * (res - ex_pos)
            else:
                routine = -res <= ex_neg * (1.0 + p.excursion_tolerance)
                if -res > ex_neg:
                    ex_neg += _EXCURSION_RISE * (-res - ex_neg)
            f32[s, EXC_POS] = ex_pos
            f32[s, EXC_NEG] = ex_neg
            routine = routine and abs(z_base) > p.clip_sigma
        for k, col in ((BASELINE, CAL_BASELINE), (TIME_OF_DAY, CAL_TOD), (LEVEL_SHIFT, CAL_SHIFT)):
            if p.enabled[k] and p.onset_from[k] and judged[k]:
                high = floor if floor > evidence else evidence
                cb = CAL + CAL_WIDTH * col
                cal = (
                    float(f32[s, cb]),
                    float(f32[s, cb + 1]),
                    float(f32[s, cb + 2]),
                    float(f32[s, cb + 3]),
                    float(f32[s, cb + 4]),
                )
                # The onset calibrates the adaptive baseline's own z, not the held one.
                z = z_base if k == BASELINE else zs[k]
                got, mean, var, short, count, record = _calibrate(
                    cal, z, high, p.onset_min_history, p
                )
                f32[s, cb] = mean
                f32[s, cb + 1] = var
                f32[s, cb + 2] = short
                f32[s, cb + 3] = count
                f32[s, cb + 4] = record
                if routine and k != LEVEL_SHIFT:
                    got = 0.0
                evidence = _fmax(evidence, got)
        for k in (LIMITS, FLATLINE, DROPOUT):
            if p.enabled[k] and p.onset_from[k]:
                q = sc[k]
                q = min(q, 1.0 - 1e-12)
                evidence = _fmax(evidence, half * q / (1.0 - q))
        g_onset[i] = 0.0
        if learnable and evidence >= p.report_min and evidence > bar:
            g_onset[i] = evidence / (evidence + half)
            f32[s, REPORTED] = evidence
            f32[s, REPORT_REF] = evidence
            f32[s, SINCE_REPORT] = 0.0
        else:
            f32[s, REPORT_REF] = ref
            f32[s, SINCE_REPORT] = since if since < 1e6 else 1e6

        # --- decisions: on at score_on, off below score_off (hysteresis).
        since_ms = t - f64[s, SINCE_TS]
        for k in range(K):
            if not p.enabled[k]:
                continue
            active = f32[s, EV_ACTIVE + k] > 0.0
            q = sc[k]
            if not active:
                if not q >= p.score_on:
                    continue
                start = last_ts if k == DROPOUT else t
                events = _record(events, n_ev, i, k, 1.0, start, q, zs[k], refs[k], since_ms)
                n_ev += 1
                if k == DROPOUT:  # the reading that ends a silence: start and end
                    events = _record(events, n_ev, i, k, 0.0, start, q, zs[k], refs[k], since_ms)
                    n_ev += 1
                    continue
                f32[s, EV_ACTIVE + k] = 1.0
                f64[s, EV_START + k] = start
                f32[s, EV_PEAK + k] = q
                continue
            ends = learnable if k == DROPOUT else (q < p.score_off and learnable)
            if not ends:
                f32[s, EV_PEAK + k] = max(f32[s, EV_PEAK + k], q)
                continue
            start = f64[s, EV_START + k]
            peak = float(f32[s, EV_PEAK + k])
            events = _record(events, n_ev, i, k, 0.0, start, peak, zs[k], refs[k], since_ms)
            n_ev += 1
            f32[s, EV_ACTIVE + k] = 0.0

        # --- learning. Limits first: their level holds for non-finite readings.
        f32[s, LIM_LEVEL] = lim_new
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
            fast_prev = f64[s, BASE_FAST]
            fast = x
            if not math.isnan(fast_prev):
                fast = fast_prev + (x - fast_prev) * p.fast_alpha
            a_slow = p.alpha_slow if p.alpha_slow > inv_n1 else inv_n1
            f32[s, BASE_SLOW] = base_slow + (abs_res - base_slow) * a_slow
            # Outliers in a row on one side: the series has moved for good.
            run = float(f32[s, BASE_RUN])
            side = 0.0
            if warm and abs(z_base) > p.clip_sigma:
                side = 1.0 if z_base > 0.0 else -1.0
            if side == 0.0:
                run = 0.0
            elif (run > 0.0 and side > 0.0) or (run < 0.0 and side < 0.0):
                run += side
            else:
                run = side
            if abs(run) == 1.0 and math.isnan(hold_ref):
                # Where the series was, and its noise, before the outliers inflated it.
                f64[s, RUN_LEVEL] = lvl
                f32[s, HOLD_SCALE] = base_scale
            if abs(run) >= p.rebaseline_run:
                if math.isnan(hold_ref):
                    f64[s, HOLD_REF] = f64[s, RUN_LEVEL]
                    f64[s, HOLD_TS] = t
                new_level = fast
                run = 0.0
            elif not math.isnan(hold_ref) and (
                abs(z_hold) < p.clip_sigma or t - f64[s, HOLD_TS] > p.hold_ms
            ):
                f64[s, HOLD_REF] = math.nan  # back to where it was, or the new normal
            f64[s, BASE_LEVEL] = new_level
            f32[s, BASE_DEV] = new_dev
            f64[s, BASE_FAST] = fast
            f32[s, BASE_RUN] = run

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
            tod[s, tb] = t_level
            tod[s, tb + 1] = t_dev
            tod[s, tb + 2] = new_count
            f32[s, TOD_SLOW] = tod_slow + (t_abs - tod_slow) * a_slow

            # Level shift: the forecast residual's scale; the sums restart on a shift.
            if not math.isnan(pred):
                c_bound = p.clip_sigma * cu_scale if warm else math.inf
                c_abs = abs(x - pred)
                c_step = (c_abs if c_abs < c_bound else c_bound) - cu_dev
                a_c = p.alpha_scale if p.alpha_scale > inv_n1 else inv_n1
                f32[s, CUSUM_DEV] = cu_dev + c_step * a_c
            if stat >= p.cusum_h:
                pos = 0.0
                neg = 0.0
            f32[s, CUSUM_POS] = pos
            f32[s, CUSUM_NEG] = neg

            # Flatline: the repeat rate and the run.
            if not math.isnan(last_x):
                a_r = p.alpha_repeat if p.alpha_repeat > inv_n1 else inv_n1
                f32[s, FLAT_RATE] = flat_rate + ((1.0 if same else 0.0) - flat_rate) * a_r
            f32[s, FLAT_RUN] = flat_run

        # --- the core: Holt level and trend, period, last value and time.
        if learnable:
            unit = dt if math.isnan(expected) else expected
            la = 1.0
            lb = 0.0
            if dt == unit and unit > 0.0:  # the usual gap: one expected period
                la = p.holt_a
                lb = p.holt_b
            elif not math.isnan(dt) and unit > 0.0:
                la = 1.0 - math.exp(-dt / (unit * p.trend_level_periods))
                lb = 1.0 - math.exp(-dt / (unit * p.trend_periods))
            if learn_ok:
                new_h = x if first else pred + la * (x - pred)
                step_t = trend
                if dt > 0.0:
                    step_t = (new_h - hlevel) * (HOUR_MS / dt)
                f64[s, HLEVEL] = new_h
                f32[s, TREND] = 0.0 if first else trend + lb * (step_t - trend)
                f64[s, N] = n + 1.0
            # The period a generic series reports at: robust EWMA of its positive gaps.
            if dt > 0.0:
                if math.isnan(learned):
                    f64[s, PERIOD] = dt
                else:
                    capped = _fmin(dt, 3.0 * learned)
                    a_p = p.alpha_period
                    if n * p.alpha_period < 1.0:
                        a_p = 1.0 / (n if n > 1.0 else 1.0)
                    f64[s, PERIOD] = learned + a_p * (capped - learned)
            if x != last_x:
                f64[s, SINCE_TS] = t
            if first:
                f64[s, FIRST_TS] = t
            f64[s, LAST_X] = x
            f64[s, LAST_TS] = _fmax(last_ts, t)
            f32[s, LAST_SCORE] = combined
    # Scores in the input order: a pass of its own (a store to a random row inside the
    # per-reading loop stalls it on the cache miss; here the misses overlap).
    for i in range(n_rows):
        scores[rows[i, ROW_AT]] = g_scores[i]
    for i in range(n_rows):
        onset[rows[i, ROW_AT]] = g_onset[i]
    return events[:n_ev]
