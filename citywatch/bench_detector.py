"""Detector speed benchmark: the full detector set vs a per-reading Python loop, River
and a bare vectorised EWMA pass, on one stream of readings of 100,000 series.

A fourth figure is the floor of the state design itself: each reading's state (one
element of every per-series array the detector keeps) gathered and scattered back in the
detector's own rounds and pieces, with no arithmetic. No numpy detector that keeps this
state and honours per-series order can run faster; ``ours ÷ state floor`` says how much
of the time the arithmetic takes.

Every peer runs in this process on the same arrays. The Python loop and River are too
slow for the whole stream: they run on a subsample and their rate is extrapolated
(readings/s does not depend on the stream length for per-reading code); the table says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from anomaly import Detector, DetectorConfig
from anomaly.detector import PIECE
from anomaly.rounds import plan_rounds
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
    subsample: int = 0

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
    """Seconds per call: repeated until ``min_seconds`` of work, at least once."""
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


def state_floor(det: Detector, slots: IntArray, ts: IntArray) -> None:
    """Move each reading's state in and out as ``update_arrays`` does, nothing else: one
    element of every state array gathered and written back per reading (values are
    unchanged), in the same rounds and pieces."""
    flats = [(det.store[name].reshape(-1), det.store[name][0].size) for name in det.store]
    for idx in plan_rounds(slots, ts):
        for start in range(0, len(idx), PIECE):
            piece = slots.take(idx[start : start + PIECE])
            for flat, width in flats:
                at = piece * width if width > 1 else piece
                flat[at] = flat.take(at)


def run(
    series: int = 100_000,
    sizes: Sequence[int] = (1_000, 10_000, 100_000, 1_000_000),
    subsample: int = 20_000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Measure; ``progress`` gets a line per step (the CLI prints it)."""
    say = progress or (lambda _: None)
    cfg = DetectorConfig()
    det = Detector(cfg, capacity=series)
    stream = Stream(series, seed)
    for i in range(series):
        det.registry.slot(f"d{i}", int(stream.metric[i]))
    say(f"warming {series:,} series past the warm-up ({cfg.warmup} readings each)")
    for _ in range(cfg.warmup):
        det.update_arrays(*stream.batch(series))
    result = BenchResult(series=series, subsample=subsample)
    mean = np.zeros(series)
    for size in sizes:
        reps = max(1, min(10, 2_000_000 // size))
        batches = [stream.batch(size) for _ in range(reps)]
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
    result.state_arrays = sum(1 for _ in det.store)
    assert math.isfinite(result.ewma_bound_ratio)
    return result
