"""Per-series calibration of the sub-detectors into one *onset* score.

The raw combined score (the max of the sub-detector scores) says "how far from normal
in robust sigmas". On heavy-tailed series (counts, CPU, traffic) large z are routine,
so that score saturates all the time and a real change drowns in it. The onset score
asks three other questions, all per series and without labels:

1. **How unusual is this evidence for this series?** Each statistical sub-detector's
   statistic ``log1p(|z|)`` (the log tames heavy tails) is averaged over a few readings
   and compared with the long-run mean and spread of the same average in this series
   (the idea of HTM's anomaly likelihood). The Gaussian tail probability of that
   standardised average, in decades (``-log10 p``), is the evidence. A series whose z
   is always large learns it; a quiet one reacts to a modest change.
2. **Is it outside everything this series has shown?** A reading beyond the series'
   observed range (its running min/max) by more than ``onset_extreme_tolerance`` of that
   range is a new extreme, HTM's "spatial anomaly" check: certain evidence
   (``onset_extreme_decades``, more for each doubling of the distance beyond the old
   extreme) whatever the calibrated statistics say. Records are rare
   in any stationary series (after n readings the next is a record with probability
   1/(n+1), and the margin makes it rarer still), and the large evidence, decaying like
   any report, also keeps the burst that follows a record from being reported again.
3. **Is it new?** A detection is worth reporting at its onset; repeating it while the
   episode lasts adds nothing but noise (and alert fatigue). The evidence already
   reported decays with a half-life of ``onset_half_life`` readings; only the excess
   over it counts.

The evidence is the max over the sub-detectors ``onset_from`` names (calibrated ones as
above; limits, flatline or dropout, if named, with their scores mapped back to decades)
and the new-extreme check, then the excess is squashed to [0, 1) with ``onset_half``
decades -> 0.5. The level-shift CUSUM is zero most of the time by design, so its
calibration learns from its excursions (positive scores) only; baseline and time of day
learn from every reading they judge. Pure numpy; the Gaussian tail is hand-written (a
closed-form approximation, Börjesson & Sundberg 1979, relative error < 0.3 %, stable far
into the tail) because the design keeps ``anomaly`` numpy-only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anomaly.config import DetectorConfig
from anomaly.context import FloatArray, IntArray, Round, Store, every, nonzero, put, some
from anomaly.detectors import Scores, SeriesDetector

CALIBRATED: tuple[str, ...] = ("baseline", "time_of_day", "level_shift")
"""Sub-detectors with a z-like statistic that can be calibrated per series."""

_LN10 = float(np.log(10.0))
_SQRT_2PI = float(np.sqrt(2.0 * np.pi))


def tail_decades(z: FloatArray) -> FloatArray:
    """``-log10 P(Z > z)`` for a standard normal Z, vectorised and finite for any z.

    Examples
    --------
    >>> [round(float(v), 2) for v in tail_decades(np.array([0.0, 1.645, 5.0, -3.0]))]
    [0.3, 1.3, 6.54, 0.0]
    """
    a, b = 0.339, 5.510
    x = np.abs(z)
    np.minimum(x, 1e4, out=x)
    # log Q(|z|) = -x^2/2 - log(((1-a) x + a sqrt(x^2 + b)) sqrt(2 pi)), in place.
    root = x * x
    np.add(root, b, out=root)
    np.sqrt(root, out=root)
    np.multiply(root, a, out=root)
    inner = (1.0 - a) * x
    np.add(inner, root, out=inner)
    np.multiply(inner, _SQRT_2PI, out=inner)
    np.log(inner, out=inner)
    log_q = -0.5 * x
    np.multiply(log_q, x, out=log_q)
    np.subtract(log_q, inner, out=log_q)
    # For z < 0 the tail is 1 - Q(|z|): -log10(1 - q), tiny; computed only there.
    lower = ~(z >= 0.0)
    tiny = -np.log1p(-np.exp(log_q[lower])) / _LN10 if some(lower) else None
    out = np.divide(log_q, -_LN10, out=log_q)  # the upper tail, -log10 Q
    if tiny is not None:
        out[lower] = tiny
    return out


class Calibrator:
    """State and arithmetic of the onset score (see the module docstring)."""

    def __init__(self, config: DetectorConfig, components: Sequence[SeriesDetector]) -> None:
        self.config = config
        names = [c.name for c in components]
        self.calibrated = [(k, n) for k, n in enumerate(names) if n in CALIBRATED]
        self.hard = [k for k, n in enumerate(names) if n not in CALIBRATED]
        used = set(config.onset_from)
        self.calibrated = [(k, n) for k, n in self.calibrated if n in used]
        self.hard = [k for k in self.hard if names[k] in used]
        self.decay = 0.5 ** (1.0 / config.onset_half_life)

    def allocate(self, store: Store, capacity: int) -> None:
        width = max(1, len(self.calibrated))
        # Columns per calibrated sub-detector: long mean, long variance, short mean, count.
        store.add("cal_mean", capacity, 0.0, width=width)
        store.add("cal_var", capacity, 0.0, width=width)
        store.add("cal_short", capacity, 0.0, width=width)
        store.add("cal_n", capacity, 0.0, width=width)
        store.add("cal_peak", capacity, 0.0)
        # Running range of the values, for the new-extreme check.
        store.add("cal_min", capacity, np.nan)
        store.add("cal_max", capacity, np.nan)

    def step(self, r: Round, results: Sequence[Scores], store: Store) -> FloatArray:
        """The onset score of each reading of the round; folds the round into the state."""
        cfg, s = self.config, r.slots
        peak_col = store["cal_peak"]
        peak_prev = peak_col.take(s)
        np.multiply(peak_prev, self.decay, out=peak_prev)
        evidence = self._extreme(r, store)
        self._calibrated(results, s, store, peak_prev, evidence)
        half = cfg.onset_half
        for k in self.hard:
            score = np.minimum(results[k].score, 1.0 - 1e-12)
            np.fmax(evidence, half * score / (1.0 - score), out=evidence)
        excess = np.subtract(evidence, peak_prev)
        np.maximum(excess, 0.0, out=excess)
        np.fmax(evidence, peak_prev, out=evidence)  # the new peak
        onset = excess / (excess + half)
        if r.all_learnable:
            peak_col[s] = evidence
            return onset
        peak_col[s] = np.where(r.learnable, evidence, peak_prev)
        return np.where(r.learnable, onset, 0.0)

    def _extreme(self, r: Round, store: Store) -> FloatArray:
        """Evidence of a new extreme per reading, in decades (0 inside the range); folds
        the round's values into the running range."""
        cfg, s = self.config, r.slots
        lo, hi = store["cal_min"].take(s), store["cal_max"].take(s)
        ok = r.learn_ok
        # fmin/fmax skip NaN: the first reading starts the range.
        # Only a new record (or a first value: NaN != NaN) changes the range.
        for name, old, new in (
            ("cal_min", lo, np.fmin(lo, r.x)),
            ("cal_max", hi, np.fmax(hi, r.x)),
        ):
            if some(new != old):
                put(store[name], s, ok, new, r.all_learn_ok)
        evidence = np.zeros(len(r))
        if cfg.onset_extreme_decades == 0.0:
            return evidence
        width = hi - lo
        margin = cfg.onset_extreme_tolerance * width
        with np.errstate(invalid="ignore"):  # NaN range: first reading
            beyond = np.fmax(r.x - hi, lo - r.x)
            breach = beyond > margin
            breach &= width > 0.0
            breach &= r.judge_ok
        if not some(breach):  # the usual round: no record broken
            return evidence
        # Margins beyond the old extreme (>= 1 where it counts; 0-margin: just 1). Each
        # doubling of the distance beyond the record adds the breach's evidence again: a
        # wild value outranks a marginal record that came shortly before it.
        m, b = margin[breach], beyond[breach]
        with np.errstate(divide="ignore"):
            margins = np.where(m > 0.0, b / np.where(m > 0.0, m, 1.0), 1.0)
        grow = 1.0 + np.log2(np.clip(margins, 1.0, 1e300))
        evidence[breach] = cfg.onset_extreme_decades * grow
        return evidence

    def _calibrated(
        self,
        results: Sequence[Scores],
        s: IntArray,
        store: Store,
        peak_prev: FloatArray,
        evidence: FloatArray,
    ) -> None:
        """Raise ``evidence`` to the decades of every calibrated sub-detector and fold
        their judged readings into the calibration: the judged readings of all of them
        in one pass (the level-shift CUSUM, and time of day before its history, judge
        few or none of a round)."""
        width = store["cal_mean"].shape[1]
        row = s * width if width > 1 else s
        parts: list[tuple[IntArray | None, FloatArray, IntArray]] = []
        for col, (k, _) in enumerate(self.calibrated):
            res = results[k]
            judged = res.judged if res.judged is not None else res.score > 0.0
            n_judged = int(np.count_nonzero(judged))
            if n_judged == len(judged):
                parts.append((None, res.z, row + col))
            elif n_judged:
                picked = nonzero(judged)
                parts.append((picked, res.z.take(picked), row.take(picked) + col))
        if not parts:
            return
        if len(parts) == 1:
            z, flat = parts[0][1], parts[0][2]
        else:
            z = np.concatenate([part[1] for part in parts])
            flat = np.concatenate([part[2] for part in parts])
        floor = None
        if len(z) >= _BOUND_MIN:
            floors = [peak_prev if p is None else peak_prev.take(p) for p, _, _ in parts]
            floor = floors[0] if len(floors) == 1 else np.concatenate(floors)
        decades = self._learn(z, flat, store, floor)
        start = 0
        for at, part_z, _ in parts:
            part = decades[start : start + len(part_z)]
            start += len(part_z)
            if at is None:
                np.fmax(evidence, part, out=evidence)
            else:
                evidence[at] = np.fmax(evidence.take(at), part)

    def _learn(
        self, z: FloatArray, flat: IntArray, store: Store, floor: FloatArray | None
    ) -> FloatArray:
        """Decades of evidence of statistics ``z`` at ``flat`` indices of the calibration
        tables, which they are folded into. Where ``floor`` (the decayed peak of evidence
        already reported) is given, decades that cannot exceed it come out 0: the onset
        and the new peak are the same for any evidence up to the peak."""
        cfg = self.config
        raw = np.abs(z)
        np.minimum(raw, 1e12, out=raw)
        np.fmax(raw, 0.0, out=raw)  # NaN -> 0 (nan_to_num; inf is capped above)
        np.log1p(raw, out=raw)
        tables = [store[name].reshape(-1) for name in ("cal_mean", "cal_var", "cal_short", "cal_n")]
        mean, var, prev_short, count = (table.take(flat) for table in tables)
        seen = count > 0
        short = prev_short + cfg.onset_short_alpha * (raw - prev_short)
        if not every(seen):
            short = np.where(seen, short, raw)
        sd = np.sqrt(var)
        np.maximum(sd, cfg.onset_min_sd, out=sd)
        d = short - mean
        ready = count >= cfg.onset_min_history
        decades = _bounded_tail(d / sd, floor)
        if not every(ready):
            decades = np.where(ready, decades, 0.0)
        a = 1.0 / (count + 1.0)
        np.maximum(cfg.onset_long_alpha, a, out=a)
        ad = a * d
        tables[0][flat] = mean + ad
        tables[1][flat] = (1.0 - a) * (var + ad * d)
        tables[2][flat] = short
        tables[3][flat] = count + 1.0
        return decades


_BOUND_MIN = 4096
"""Statistics per round from which skipping the tail where it cannot matter pays."""


def _bounded_tail(z: FloatArray, floor: FloatArray | None) -> FloatArray:
    """``tail_decades(z)``, or 0 where it cannot exceed ``floor``.

    ``(x^2/2 + 0.4 x + 1.16) / ln 10`` (x = |z|) bounds the tail from above, by at least
    0.07 decades: ``sqrt(x^2 + b) <= x + sqrt(b)`` and the log below its tangent at 2.5.
    Its few multiplications spare the log, sqrt and exp of most readings: a quiet series'
    evidence stays below what it last reported.
    """
    if floor is None:
        return tail_decades(z)
    bound = np.abs(z)
    above = bound + 0.8
    np.multiply(above, bound, out=above)
    np.multiply(above, 0.5, out=above)
    np.add(above, 1.16, out=above)
    np.greater(above, floor * _LN10, out=above)  # 1.0 where the tail may exceed the floor
    picked = nonzero(above)
    if len(picked) == len(z):
        return tail_decades(z)
    out = np.zeros(len(z))
    if len(picked):
        out[picked] = tail_decades(z.take(picked))
    return out
