"""Numenta Anomaly Benchmark (NAB v1.1) scoring, reproduced with numpy.

Mirrors ``nab/sweeper.py`` (``scaledSigmoid``, ``Sweeper._getProbationaryLength``,
``Sweeper.calcSweepScore``, ``Sweeper.calcScoreByThreshold``, ``Sweeper.scoreDataSet``)
and the normalisation of ``nab/runner.py`` (``Runner.normalize``) of numenta/NAB.

NAB scores a file by giving every row a *sweep score* that depends only on where the
row lies relative to the labelled anomaly windows, then, at a threshold, summing

* per scorable window: ``max(-A_FN, best sweep score of a detection inside it)``; the
  in-window sweep score falls monotonically from ``A_TP`` at the window's first row,
  so this is the score of the window's *first* detection (a miss costs ``A_FN``);
* per detection outside every window: its (negative) sweep score, scaled by ``A_FP``.

NAB finds that sum with a sweep over rows sorted by anomaly score; the row it reports
for a threshold ``t`` contains every row whose score is ``>= t`` (tied scores are
flushed together), so here the detections are simply the mask ``score >= threshold``.
Pure: numpy and the standard library only, no file I/O.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "NAB_PROFILES",
    "PROBATION_PERCENT",
    "REWARD_LOW_FN_RATE",
    "REWARD_LOW_FP_RATE",
    "STANDARD",
    "CorpusScore",
    "CostMatrix",
    "FileScore",
    "Profile",
    "Window",
    "normalise",
    "normalised_score",
    "probation_length",
    "row_weights",
    "scaled_sigmoid",
    "score_file",
    "window_rows",
]

PROBATION_PERCENT = 0.15
"""Share of each file (at most ``0.15 * 5000`` rows) that NAB never scores."""

_PROBATION_CAP_ROWS = 5000
_FAR_POSITION = 3.0


@dataclass(frozen=True, slots=True)
class Window:
    """A labelled anomaly window, both limits inclusive (a ``combined_windows.json`` pair).

    Both limits must be timestamps of the scored file, as in NAB's labels.
    """

    start: np.datetime64
    end: np.datetime64


@dataclass(frozen=True, slots=True)
class CostMatrix:
    """The ``CostMatrix`` of a NAB profile (``tpWeight``, ``fpWeight``, ``fnWeight``,
    ``tnWeight``). NAB never uses ``tn``: true negatives score 0."""

    tp: float
    fp: float
    fn: float
    tn: float = 1.0

    @classmethod
    def from_nab(cls, cost_matrix: Mapping[str, float]) -> CostMatrix:
        """Build from a ``config/profiles.json`` ``CostMatrix`` mapping."""
        return cls(
            tp=float(cost_matrix["tpWeight"]),
            fp=float(cost_matrix["fpWeight"]),
            fn=float(cost_matrix["fnWeight"]),
            tn=float(cost_matrix.get("tnWeight", 1.0)),
        )


@dataclass(frozen=True, slots=True)
class Profile:
    """A named NAB application profile (a key of ``config/profiles.json``)."""

    name: str
    costs: CostMatrix


STANDARD = Profile("standard", CostMatrix(tp=1.0, fp=0.11, fn=1.0))
REWARD_LOW_FP_RATE = Profile("reward_low_FP_rate", CostMatrix(tp=1.0, fp=0.22, fn=1.0))
REWARD_LOW_FN_RATE = Profile("reward_low_FN_rate", CostMatrix(tp=1.0, fp=0.11, fn=2.0))
NAB_PROFILES: Mapping[str, Profile] = {
    p.name: p for p in (STANDARD, REWARD_LOW_FP_RATE, REWARD_LOW_FN_RATE)
}
"""The three profiles of NAB v1.1 ``config/profiles.json``."""


@dataclass(frozen=True, slots=True)
class FileScore:
    """NAB's score of one file at one threshold (a ``ThresholdScore`` row, plus detail).

    ``tp``/``fp``/``fn``/``tn`` are NAB's *row* counts over the rows after the
    probationary period. ``windows`` counts every labelled window (NAB's "perfect"
    uses it); ``scorable_windows`` those with a row after the probationary period
    (the only ones that can score or be missed). ``raw = tp_score + fp_score + fn_score``.
    """

    raw: float
    tp: int
    fp: int
    fn: int
    tn: int
    threshold: float
    costs: CostMatrix
    windows: int
    scorable_windows: int
    windows_detected: int
    tp_score: float
    fp_score: float
    fn_score: float
    probation_rows: int

    @property
    def total(self) -> int:
        """Rows scored (``tp + tn + fp + fn``), NAB's ``Total_Count``."""
        return self.tp + self.tn + self.fp + self.fn


@dataclass(frozen=True, slots=True)
class CorpusScore:
    """A corpus total with NAB's normalisation: 0 = null detector, 100 = perfect."""

    normalised: float
    raw: float
    null: float
    perfect: float
    tp: int
    fp: int
    fn: int
    tn: int
    windows: int
    windows_detected: int
    files: int


def scaled_sigmoid(position: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """NAB ``sweeper.scaledSigmoid``: ``2 / (1 + exp(5x)) - 1``, and ``-1`` for ``x > 3``.

    ``-1`` (a window's first row) gives 0.98661, ``0`` (its right edge) gives 0, ``1``
    (one window width past it) gives -0.98661.
    """
    x = np.asarray(position, dtype=np.float64)
    far = x > _FAR_POSITION
    # Same operations as NAB's 2*sigmoid(-5x) - 1; far rows are overwritten below.
    with np.errstate(over="ignore"):
        val = 2.0 * (1.0 / (1.0 + np.exp(5.0 * np.where(far, 0.0, x)))) - 1.0
    return np.where(far, -1.0, val)


def probation_length(n_rows: int, probation_percent: float = PROBATION_PERCENT) -> int:
    """Number of leading rows NAB ignores (``Sweeper._getProbationaryLength``).

    NAB's length is ``min(floor(p * n), p * 5000)`` and a row ``i`` is probationary
    when ``i < length``; for the default ``p = 0.15`` that is at most 750 rows.
    """
    length = min(math.floor(probation_percent * n_rows), probation_percent * _PROBATION_CAP_ROWS)
    return max(0, math.ceil(length))


def window_rows(timestamps: npt.ArrayLike, windows: Sequence[Window]) -> list[tuple[int, int]]:
    """Row ranges ``(first, last)``, inclusive, of the windows (``calcSweepScore``'s lookups).

    Like NAB, a limit is matched to the *first* row carrying that exact timestamp.
    NAB silently skips a window whose start is missing (and every window after it)
    and fails on a missing end; here both raise ``ValueError``, as do unsorted or
    overlapping windows, which NAB's sequential walk cannot score either.
    """
    ts = np.asarray(timestamps)
    rows: list[tuple[int, int]] = []
    for window in windows:
        limits = []
        for limit in (window.start, window.end):
            hits = np.flatnonzero(ts == limit)
            if hits.size == 0:
                raise ValueError(f"window limit {limit} is not a timestamp of the file")
            limits.append(int(hits[0]))
        first, last = limits
        if last < first:
            raise ValueError(f"window {window} ends before it starts")
        if rows and first <= rows[-1][1]:
            raise ValueError(f"window {window} is out of order or overlaps the previous one")
        rows.append((first, last))
    return rows


def row_weights(
    n_rows: int, rows: Sequence[tuple[int, int]], costs: CostMatrix
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """Per-row weighted sweep score and window index (-1: outside), NAB ``calcSweepScore``.

    Inside window ``[s, e]`` of width ``w``: ``scaled_sigmoid(-(e - i + 1) / w) * A_TP /
    scaled_sigmoid(-1)``, which is exactly ``A_TP`` at ``i = s``. Outside: rows before
    the first window get ``-A_FP``; rows after a window get
    ``scaled_sigmoid((i - e) / (w - 1)) * A_FP`` from the nearest preceding window
    (NAB divides by zero there for a one-row window; here that is ``-A_FP``).
    """
    weights = np.full(n_rows, -1.0 * costs.fp, dtype=np.float64)
    window_of = np.full(n_rows, -1, dtype=np.intp)
    max_tp = float(scaled_sigmoid(-1.0))
    bounds = [*rows, (n_rows, n_rows)]
    for k, ((first, last), (next_first, _)) in enumerate(itertools.pairwise(bounds)):
        width = float(last - first + 1)
        inside = np.arange(first, last + 1)
        weights[first : last + 1] = scaled_sigmoid(-(last - inside + 1) / width) * costs.tp / max_tp
        window_of[first : last + 1] = k
        after = np.arange(last + 1, next_first)
        if after.size:
            if width > 1:
                position = np.abs(last - after) / (width - 1.0)
            else:
                position = np.full(after.size, np.inf)
            weights[last + 1 : next_first] = scaled_sigmoid(position) * costs.fp
    return weights, window_of


def score_file(
    timestamps: npt.ArrayLike,
    scores: npt.ArrayLike,
    windows: Sequence[Window],
    threshold: float,
    profile: Profile | CostMatrix,
    *,
    probation_percent: float = PROBATION_PERCENT,
) -> FileScore:
    """Score one file at a threshold, as NAB ``Sweeper.scoreDataSet`` does.

    A detection is a row after the probationary period with ``score >= threshold``
    (NaN never detects). NAB itself crashes when the threshold is above 1.1 or below
    every scored anomaly score (its sweep has no matching row); here the ``>=`` rule
    simply applies.
    """
    costs = profile.costs if isinstance(profile, Profile) else profile
    ts = np.asarray(timestamps)
    values = np.asarray(scores, dtype=np.float64)
    if ts.shape != values.shape or ts.ndim != 1:
        raise ValueError("timestamps and scores must be 1-D arrays of the same length")
    n_rows = int(values.size)
    rows = window_rows(ts, windows)
    weights, window_of = row_weights(n_rows, rows, costs)

    probation = probation_length(n_rows, probation_percent)
    scored = np.arange(n_rows) >= probation
    with np.errstate(invalid="ignore"):
        detected = scored & (values >= threshold)
    inside = window_of >= 0

    fp_mask = detected & ~inside
    fp_score = float(weights[fp_mask].sum())
    tp_score = 0.0
    fn_score = 0.0
    scorable = detected_windows = 0
    for first, last in rows:
        if last < probation:  # wholly probationary: NAB never sees the window
            continue
        scorable += 1
        hits = weights[first : last + 1][detected[first : last + 1]]
        if hits.size:
            detected_windows += 1
            tp_score += max(-costs.fn, float(hits.max()))  # = the first detection's score
        else:
            fn_score -= costs.fn

    return FileScore(
        raw=tp_score + fp_score + fn_score,
        tp=int(np.count_nonzero(detected & inside)),
        fp=int(np.count_nonzero(fp_mask)),
        fn=int(np.count_nonzero(scored & inside & ~detected)),
        tn=int(np.count_nonzero(scored & ~inside & ~detected)),
        threshold=float(threshold),
        costs=costs,
        windows=len(rows),
        scorable_windows=scorable,
        windows_detected=detected_windows,
        tp_score=tp_score,
        fp_score=fp_score,
        fn_score=fn_score,
        probation_rows=probation,
    )


def normalised_score(raw: float, null: float, perfect: float) -> float:
    """NAB ``Runner.normalize``: ``100 * (raw - null) / (perfect - null)``."""
    if perfect == null:
        raise ValueError("perfect and null scores coincide (no labelled windows?)")
    return 100.0 * (raw - null) / (perfect - null)


def normalise(file_scores: Sequence[FileScore]) -> CorpusScore:
    """Sum file scores of one detector and profile and normalise them, as NAB does.

    ``null`` is what NAB's null detector (never detects) scores on the same files:
    ``-A_FN`` per scorable window. ``perfect`` is NAB's ``tpCount * A_TP`` with
    ``tpCount`` every labelled window of these files (NAB counts the whole label
    file, so score every labelled file to match it).
    """
    if not file_scores:
        raise ValueError("no file scores to normalise")
    costs = file_scores[0].costs
    if any(f.costs != costs for f in file_scores):
        raise ValueError("file scores come from different profiles")
    raw = math.fsum(f.raw for f in file_scores)
    null = -costs.fn * sum(f.scorable_windows for f in file_scores)
    windows = sum(f.windows for f in file_scores)
    perfect = costs.tp * windows
    return CorpusScore(
        normalised=normalised_score(raw, null, perfect),
        raw=raw,
        null=null,
        perfect=perfect,
        tp=sum(f.tp for f in file_scores),
        fp=sum(f.fp for f in file_scores),
        fn=sum(f.fn for f in file_scores),
        tn=sum(f.tn for f in file_scores),
        windows=windows,
        windows_detected=sum(f.windows_detected for f in file_scores),
        files=len(file_scores),
    )
