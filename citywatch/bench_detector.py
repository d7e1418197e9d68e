"""Detector speed benchmark: the full detector set vs a per-reading Python loop, River
and a bare vectorised EWMA pass, on one stream of readings of 100,000 series.

A fourth figure is the floor of the state design itself: the batch grouped as the
detector groups it, and each reading's whole state row (every column of the detector's
state tables, and its hour-of-day bin) read and written back, compiled, with no
arithmetic. ``ours ÷ state floor`` says how much of the time the arithmetic takes.
The first-call compile time of the kernel (an empty cache) and the start with a warm
cache are measured in fresh processes.

Every peer runs in this process on the same arrays. The Python loop and River are too
slow for the whole stream: they run on a subsample and their rate is extrapolated
(readings/s does not depend on the stream length for per-reading code); the table says so.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from anomaly import Detector, DetectorConfig, kernel
from anomaly.layout import TOD_WIDTH
from telemetry.catalogue import METRICS_BY_ID

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MINUTE = 60_000

FLOAT_METRICS = tuple(m.id for m in METRICS_BY_ID.values() if m.dtype == "float")


@dataclass(frozen=True, slots=True)
class SizeResult:
    """Throughput of every peer at one batch size."""

    batch: int
    readings: int
    ours_per_s: float
    ewma_per_s: float
    state_floor_per_s: float


@dataclass(slots=True)
class BenchResult:
    """The figures the command prints (and ``--json`` emits)."""

    series: int
    sizes: list[SizeResult] = field(default_factory=list)
    readings_per_s: float = 0.0
    python_loop_per_s: float = 0.0
    river_per_s: float = 0.0
    ewma_per_s: float = 0.0
    bytes_per_series: float = 0.0
    python_loop_ratio: float = 0.0
    river_ratio: float = 0.0
    ewma_bound_ratio: float = 0.0
    state_floor_per_s: float = 0.0
    state_floor_ratio: float = 0.0
    """Ours divided by the state floor (module docstring): 1.0 would be no arithmetic."""
    state_arrays: int = 0
    """State columns per series (both tables' columns and the hour-of-day table's)."""
    subsample: int = 0
    compile_s: float = 0.0
    """First call of the kernel in a fresh process with an empty compile cache."""
    cached_start_s: float = 0.0
    """The same with the cache the first run left (what a second ``make demo`` pays)."""

    def to_json_dict(self) -> dict[str, object]:
        return asdict(self)


class Stream:
    """Readings of ``series`` series, a minute apart per series, in random series order."""

    def __init__(self, series: int, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.series = series
        self.metric = self.rng.choice(FLOAT_METRICS, size=series).astype(np.int16)
        # Each series sits inside its metric's alarm limits with noise of 2 % of that band.
        low = {
            m.id: m.warn_low if m.warn_low is not None else m.valid_min
            for m in METRICS_BY_ID.values()
        }
        high = {
            m.id: m.warn_high if m.warn_high is not None else m.valid_max
            for m in METRICS_BY_ID.values()
        }
        lo = np.array([low[int(m)] for m in self.metric])
        hi = np.array([high[int(m)] for m in self.metric])
        self.level = lo + (hi - lo) * self.rng.uniform(0.3, 0.7, series)
        self.noise = 0.02 * (hi - lo)
        self.clock = np.zeros(series, dtype=np.int64)  # next reading time per series

    def batch(self, n: int) -> tuple[IntArray, IntArray, FloatArray]:
        """``n`` readings: random series; each series' readings advance its clock."""
        slots = self.rng.integers(0, self.series, n).astype(np.int64)
        order = np.argsort(slots, kind="stable")
        counts = np.bincount(slots, minlength=self.series)
        starts = np.cumsum(counts) - counts
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n) - np.repeat(starts, counts)
        ts = self.clock[slots] + rank * MINUTE
        self.clock += counts * MINUTE
        x = self.level[slots] + self.noise[slots] * self.rng.normal(0, 1, n)
        return slots, ts, x


def _timed(fn: Callable[[], object], min_seconds: float = 0.5, max_reps: int = 20) -> float:
    """Seconds per call: repeated until ``min_seconds`` of work, at least once, after one
    untimed call (a first call may compile: the state floor at 1,000-reading batches
    printed 3,840 readings/s, its compile time)."""
    fn()
    reps, spent = 0, 0.0
    while reps < max_reps and (spent < min_seconds or reps == 0):
        t0 = time.perf_counter()
        fn()
        spent += time.perf_counter() - t0
        reps += 1
    return spent / reps


def python_loop(
    state: dict[int, list[float]],
    slots: Sequence[int],
    ts: Sequence[int],
    xs: Sequence[float],
    cfg: DetectorConfig,
) -> float:
    """The detector's per-reading arithmetic (baseline, CUSUM, flatline, dropout, limits)
    as a plain Python loop over a dict of per-series lists; returns a checksum."""
    total = 0.0
    z_half4 = cfg.z_half**4
    for s, t, x in zip(slots, ts, xs, strict=True):
        st = state.get(s)
        if st is None:
            state[s] = [x, 0.0, 0.0, 0.0, x, float(t), 0.0, 0.5, 1.0]
            continue
        level, dev, pos, neg, last, last_t, run, rate, n = st
        scale = max(1.2533 * dev, 1e-3 * abs(level) + 1e-9)
        z = (x - level) / scale
        bound = cfg.clip_sigma * scale
        r = max(-cfg.cusum_clip, min(cfg.cusum_clip, z))
        pos = max(0.0, pos + r - cfg.cusum_k)
        neg = max(0.0, neg - r - cfg.cusum_k)
        run = run + 1.0 if x == last else 0.0
        gap = (t - last_t) / MINUTE
        a = max(cfg.alpha, 1.0 / (n + 1.0))
        resid = x - level
        level += a * max(-bound, min(bound, resid))
        dev += a * (min(abs(resid), bound) - dev)
        rate += cfg.alpha_repeat * ((x == last) - rate)
        zs = (abs(z), cfg.z_on * max(pos, neg) / cfg.cusum_h, cfg.z_on * gap / cfg.dropout_k)
        score = max(q**4 / (q**4 + z_half4) for q in zs)
        lim = 1.0 if x >= 55.0 else 0.0
        total += max(score, lim)
        state[s] = [level, dev, pos, neg, x, float(t), run, rate, n + 1.0]
    return total


def river_peer(models: dict[int, Any], slots: Sequence[int], xs: Sequence[float]) -> float:
    """River's stats-based z-score detector (StandardAbsoluteDeviation), one per series."""
    # Imported here: river is a dev dependency and slow to import for every CLI start.
    from river.anomaly import StandardAbsoluteDeviation  # noqa: PLC0415

    total = 0.0
    for s, x in zip(slots, xs, strict=True):
        model = models.get(s)
        if model is None:
            model = models[s] = StandardAbsoluteDeviation()
        total += model.score_one({}, x)  # SAD scores the target y against its history
        model.learn_one({}, x)
    return total


def bare_ewma(mean: FloatArray, slots: IntArray, x: FloatArray, alpha: float) -> None:
    """The lower bound: one gather, one EWMA step and one scatter per reading."""
    m = mean[slots]
    m += alpha * (x - m)
    mean[slots] = m


@numba.njit(cache=True, nogil=True)
def _move_rows(
    rows: IntArray,
    starts: IntArray,
    series: IntArray,
    f64: FloatArray,
    f32: npt.NDArray[np.float32],
    tod: npt.NDArray[np.float32],
    bins: int,
) -> float:
    """Each series' rows copied out and back once per run of its readings (as the
    kernel holds them), its hour bin and the reading read per reading."""
    total = 0.0
    day = 86_400_000
    row64 = np.empty(f64.shape[1])
    row32 = np.empty(f32.shape[1], dtype=np.float32)
    values = rows.view(np.float64)
    for q in range(series.shape[0]):
        s = series[q]
        row64[:] = f64[s]
        row32[:] = f32[s]
        for i in range(starts[q], starts[q + 1]):
            b = ((rows[i, kernel.ROW_TS] % day) * bins // day) * TOD_WIDTH
            total += values[i, kernel.ROW_X] + tod[s, b]
            tod[s, b] = tod[s, b] if total != -1.0 else 0.0  # the compiler must store
        f64[s] = row64
        f32[s] = row32
    return total


def state_floor(det: Detector, slots: IntArray, ts: IntArray) -> None:
    """Group the batch as ``update_arrays`` does and move each series' state rows in and
    out (values unchanged), nothing else."""
    rows, _, starts, series = kernel.group(slots, ts, np.zeros(len(slots)), det.registry.size)
    st = det.state
    _move_rows(rows, starts, series, st.f64, st.f32, st.tod, st.tod_bins)


_FIRST_CALL = """
import time
t0 = time.perf_counter()
import numpy as np
from anomaly import Detector
det = Detector()
slot = det.registry.slot("d", 1)
det.update_arrays([slot], [0], [20.0])
print(time.perf_counter() - t0)
"""


def first_call_seconds(cache_dir: str) -> float:
    """Seconds from import to the first scored reading in a fresh process."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:  # say how it died: a bare CalledProcessError hid it once
        how = f"signal {-out.returncode}" if out.returncode < 0 else f"exit {out.returncode}"
        tail = "\n".join(out.stderr.strip().splitlines()[-15:]) or "(nothing on stderr)"
        raise RuntimeError(f"the kernel's first call in a fresh process died ({how}):\n{tail}")
    return float(out.stdout.strip().splitlines()[-1])


def run(
    series: int = 100_000,
    sizes: Sequence[int] = (1_000, 10_000, 100_000, 1_000_000),
    subsample: int = 20_000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Measure; ``progress`` gets a line per step (the CLI prints it)."""
    say = progress or (lambda _: None)
    result = BenchResult(series=series, subsample=subsample)
    with tempfile.TemporaryDirectory() as cache:
        result.compile_s = first_call_seconds(cache)
        result.cached_start_s = first_call_seconds(cache)
    say(
        f"kernel: first call {result.compile_s:.1f} s with an empty compile cache, "
        f"{result.cached_start_s:.1f} s with a warm one"
    )
    cfg = DetectorConfig()
    det = Detector(cfg, capacity=series)
    stream = Stream(series, seed)
    for i in range(series):
        det.registry.slot(f"d{i}", int(stream.metric[i]))
    say(f"warming {series:,} series past the warm-up ({cfg.warmup} readings each)")
    for _ in range(cfg.warmup):
        det.update_arrays(*stream.batch(series))
    mean = np.zeros(series)
    for size in sizes:
        reps = max(1, min(10, 2_000_000 // size))
        batches = [stream.batch(size) for _ in range(reps)]
        # One untimed batch of this size first, as ``_timed`` gives the others: the first
        # batch larger than any before grows the detector's working memory (page faults:
        # the first 1M-reading batch ran at 4.9 M/s, the next ones at 7.7).
        det.update_arrays(*stream.batch(size))
        t0 = time.perf_counter()
        for b in batches:
            det.update_arrays(*b)
        ours = reps * size / (time.perf_counter() - t0)

        def ewma_pass(batches: list[tuple[IntArray, IntArray, FloatArray]] = batches) -> None:
            for b in batches:
                bare_ewma(mean, b[0], b[2], cfg.alpha)

        ewma_s = _timed(ewma_pass)
        ewma = reps * size / ewma_s

        def floor_pass(batches: list[tuple[IntArray, IntArray, FloatArray]] = batches) -> None:
            for b in batches:
                state_floor(det, b[0], b[1])

        floor = reps * size / _timed(floor_pass)
        result.sizes.append(SizeResult(size, reps * size, ours, ewma, floor))
        say(
            f"batch {size:>9,}: ours {ours / 1e6:8.2f} M/s, bare EWMA {ewma / 1e6:8.2f} M/s, "
            f"state floor {floor / 1e6:8.2f} M/s"
        )
    # Peers: a subsample of readings of 1,000 series, after a priming pass over the
    # same series (so every per-series state exists and has learned).
    small = Stream(1_000, seed + 1)
    prime, timed = small.batch(20_000), small.batch(subsample)
    state: dict[int, list[float]] = {}
    python_loop(state, prime[0].tolist(), prime[1].tolist(), prime[2].tolist(), cfg)
    args = [a.tolist() for a in timed]
    t0 = time.perf_counter()
    python_loop(state, args[0], args[1], args[2], cfg)
    result.python_loop_per_s = subsample / (time.perf_counter() - t0)
    say(f"python loop: {result.python_loop_per_s / 1e6:.3f} M/s (subsample {subsample:,})")
    models: dict[int, Any] = {}
    river_peer(models, prime[0].tolist(), prime[2].tolist())
    t0 = time.perf_counter()
    river_peer(models, args[0], args[2])
    result.river_per_s = subsample / (time.perf_counter() - t0)
    say(f"river SAD: {result.river_per_s / 1e6:.3f} M/s (subsample {subsample:,})")
    top = result.sizes[-1]
    result.readings_per_s = top.ours_per_s
    result.ewma_per_s = top.ewma_per_s
    result.bytes_per_series = det.bytes_per_series()
    result.python_loop_ratio = result.readings_per_s / result.python_loop_per_s
    result.river_ratio = result.readings_per_s / result.river_per_s
    result.ewma_bound_ratio = result.readings_per_s / result.ewma_per_s
    result.state_floor_per_s = top.state_floor_per_s
    result.state_floor_ratio = result.readings_per_s / result.state_floor_per_s
    st = det.state
    result.state_arrays = st.f64.shape[1] + st.f32.shape[1] + st.tod.shape[1]
    assert math.isfinite(result.ewma_bound_ratio)
    return result
