"""NAB scoring (anomaly.nab) on small series built here; the NAB data is never read."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from benchmarks.nab import (
    NAB_PROFILES,
    REWARD_LOW_FN_RATE,
    STANDARD,
    CostMatrix,
    FileScore,
    Profile,
    Window,
    normalise,
    probation_length,
    row_weights,
    scaled_sigmoid,
    score_file,
    window_rows,
)

pytestmark = pytest.mark.unit

N = 200  # rows per synthetic file: probationary period = 30 rows


def _timestamps(n: int) -> npt.NDArray[np.datetime64]:
    return np.datetime64("2024-01-01T00:00") + np.arange(n) * np.timedelta64(5, "m")


def _windows(ts: npt.NDArray[np.datetime64], rows: Sequence[tuple[int, int]]) -> list[Window]:
    return [Window(ts[first], ts[last]) for first, last in rows]


def _score(
    detections: Sequence[int],
    rows: Sequence[tuple[int, int]],
    profile: Profile = STANDARD,
    n: int = N,
) -> FileScore:
    ts = _timestamps(n)
    scores = np.zeros(n)
    scores[list(detections)] = 1.0
    return score_file(ts, scores, _windows(ts, rows), 0.5, profile)


# --- the scaled sigmoid -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (-1.0, 0.9866142981514303),  # a window's first row
        (-0.5, 0.8482836399575129),  # half-way into it
        (0.0, 0.0),  # its right edge
        (1.0, -0.9866142981514303),  # one window width past it
        (3.0, 2 / (1 + math.exp(15)) - 1),  # NAB clips only *beyond* 3
        (3.0001, -1.0),
        (1e9, -1.0),
    ],
)
def test_scaled_sigmoid_known_points(position: float, expected: float) -> None:
    assert float(scaled_sigmoid(position)) == pytest.approx(expected, abs=1e-15)


def test_scaled_sigmoid_is_vectorised_and_decreasing() -> None:
    x = np.linspace(-5.0, 5.0, 101)
    y = scaled_sigmoid(x)
    assert y.shape == x.shape
    assert np.all(np.diff(y) <= 0)


# --- probationary period ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_rows", "expected"), [(0, 0), (6, 0), (7, 1), (200, 30), (4999, 749), (5000, 750)]
)
def test_probation_length_is_15_percent(n_rows: int, expected: int) -> None:
    assert probation_length(n_rows) == expected


def test_probation_length_is_capped_at_750_rows() -> None:
    assert probation_length(22_695) == 750


def test_probationary_rows_are_ignored() -> None:
    null = _score([], [(100, 119)])
    early = _score([0, 5, 29], [(100, 119)])  # all inside the 30 probationary rows
    assert early == null
    assert early.fp == 0
    assert early.total == N - 30


def test_window_inside_probation_is_not_scored_but_counts_for_perfect() -> None:
    fs = _score([], [(5, 14), (100, 119)])
    assert fs.windows == 2
    assert fs.scorable_windows == 1
    assert fs.raw == -1.0  # only the scorable window is missed
    corpus = normalise([fs])
    assert corpus.null == -1.0
    assert corpus.perfect == 2.0


def test_detection_in_probationary_part_of_a_window_does_not_count() -> None:
    # Window rows 20..59 straddle the probation end (row 30): row 25 cannot score.
    assert _score([25], [(20, 59)]).windows_detected == 0
    assert _score([30], [(20, 59)]).windows_detected == 1


# --- true positives, false negatives ---------------------------------------------------


def test_detection_at_window_start_scores_a_tp() -> None:
    assert _score([100], [(100, 119)]).raw == 1.0
    heavy = Profile("heavy", CostMatrix(tp=2.5, fp=0.11, fn=1.0))
    assert _score([100], [(100, 119)], heavy).raw == pytest.approx(2.5, rel=1e-15)


def test_later_detection_in_window_scores_less_but_positive() -> None:
    scores = [_score([i], [(100, 119)]).raw for i in range(100, 120)]
    assert all(a > b for a, b in itertools.pairwise(scores))
    assert scores[-1] > 0  # even the last row of the window is a (small) TP


def test_second_detection_in_same_window_does_not_add() -> None:
    once = _score([105], [(100, 119)])
    twice = _score([105, 110], [(100, 119)])
    assert twice.raw == once.raw
    assert twice.windows_detected == once.windows_detected == 1
    assert twice.tp == 2  # NAB's counts are rows, its score is per window


def test_first_detection_in_window_counts_whatever_the_order() -> None:
    assert _score([110, 105], [(100, 119)]).raw == _score([105], [(100, 119)]).raw


def test_missed_window_costs_a_fn() -> None:
    assert _score([], [(100, 119)]).raw == -1.0
    assert _score([], [(100, 119)], REWARD_LOW_FN_RATE).raw == -2.0


def test_threshold_is_inclusive() -> None:
    ts = _timestamps(N)
    scores = np.zeros(N)
    scores[100] = 0.5
    windows = _windows(ts, [(100, 119)])
    assert score_file(ts, scores, windows, 0.5, STANDARD).raw == 1.0
    assert score_file(ts, scores, windows, 0.5000001, STANDARD).raw == -1.0


def test_nan_scores_never_detect() -> None:
    ts = _timestamps(N)
    scores = np.full(N, np.nan)
    assert score_file(ts, scores, _windows(ts, [(100, 119)]), 0.0, STANDARD).raw == -1.0


# --- false positives --------------------------------------------------------------------


def test_fp_right_after_window_is_penalised_less_than_far_one() -> None:
    rows = [(60, 79)]  # width 20, so 3 widths past its end is row 79 + 3 * 19 = 136
    near = _score([60, 80], rows).fp_score
    mid = _score([60, 100], rows).fp_score
    far = _score([60, 150], rows).fp_score
    assert -STANDARD.costs.fp == far < mid < near < 0
    assert near == pytest.approx(float(scaled_sigmoid(1 / 19)) * 0.11)


def test_fp_before_any_window_costs_full_weight() -> None:
    fs = _score([40, 41], [(100, 119)])
    assert fs.fp == 2
    assert fs.fp_score == pytest.approx(-2 * 0.11)


def test_fp_in_file_without_windows() -> None:
    fs = _score([50], [])
    assert fs.raw == pytest.approx(-0.11)
    assert (fs.windows, fs.windows_detected, fs.fn) == (0, 0, 0)


def test_fp_weight_follows_profile() -> None:
    standard = _score([40], [], NAB_PROFILES["standard"]).raw
    low_fp = _score([40], [], NAB_PROFILES["reward_low_FP_rate"]).raw
    assert low_fp == pytest.approx(2 * standard)


def test_row_weights_mirror_nab_sweep_scores() -> None:
    weights, window_of = row_weights(10, [(2, 5)], STANDARD.costs)
    assert list(window_of) == [-1, -1, 0, 0, 0, 0, -1, -1, -1, -1]
    assert weights[0] == weights[1] == -0.11
    assert weights[2] == 1.0
    assert weights[5] == pytest.approx(float(scaled_sigmoid(-1 / 4)) / float(scaled_sigmoid(-1)))
    assert weights[6] == pytest.approx(float(scaled_sigmoid(1 / 3)) * 0.11)


# --- counts -----------------------------------------------------------------------------


def test_counts_are_rows_after_probation() -> None:
    fs = _score([40, 100, 101, 150], [(100, 119)])
    assert (fs.tp, fs.fp, fs.fn, fs.tn) == (2, 2, 18, N - 30 - 22)
    assert fs.total == N - 30


# --- normalisation ----------------------------------------------------------------------


FILES = [[(60, 79), (120, 139)], [], [(150, 169)]]


def test_perfect_detector_scores_100() -> None:
    for profile in NAB_PROFILES.values():
        files = [_score([w[0] for w in rows], rows, profile) for rows in FILES]
        assert normalise(files).normalised == 100.0


def test_null_detector_scores_0() -> None:
    for profile in NAB_PROFILES.values():
        corpus = normalise([_score([], rows, profile) for rows in FILES])
        assert corpus.normalised == 0.0
        assert corpus.null == -3 * profile.costs.fn
        assert corpus.perfect == 3 * profile.costs.tp


def test_normalise_sums_files() -> None:
    files = [_score([65, 40], FILES[0]), _score([50], FILES[1]), _score([], FILES[2])]
    corpus = normalise(files)
    assert corpus.raw == pytest.approx(sum(f.raw for f in files))
    assert corpus.normalised == pytest.approx(100 * (corpus.raw + 3) / 6)
    assert (corpus.windows, corpus.windows_detected, corpus.files) == (3, 1, 3)


def test_normalise_rejects_mixed_profiles_and_no_windows() -> None:
    with pytest.raises(ValueError, match="profiles"):
        normalise([_score([], FILES[0]), _score([], FILES[0], REWARD_LOW_FN_RATE)])
    with pytest.raises(ValueError, match="coincide"):
        normalise([_score([], [])])
    with pytest.raises(ValueError, match="no file"):
        normalise([])


# --- windows ----------------------------------------------------------------------------


def test_window_rows_match_first_occurrence_of_each_limit() -> None:
    ts = _timestamps(10)
    ts = np.concatenate([ts[:4], ts[3:]])  # row 3's timestamp twice (rows 3 and 4)
    assert window_rows(ts, [Window(ts[3], ts[6])]) == [(3, 6)]


def test_window_rows_reject_bad_windows() -> None:
    ts = _timestamps(20)
    with pytest.raises(ValueError, match="not a timestamp"):
        window_rows(ts, [Window(ts[2], ts[5] + np.timedelta64(1, "s"))])
    with pytest.raises(ValueError, match="ends before"):
        window_rows(ts, [Window(ts[5], ts[2])])
    with pytest.raises(ValueError, match="overlaps"):
        window_rows(ts, _windows(ts, [(2, 8), (8, 12)]))
    with pytest.raises(ValueError, match="out of order"):
        window_rows(ts, _windows(ts, [(10, 12), (2, 4)]))


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="same length"):
        score_file(_timestamps(5), np.zeros(4), [], 0.5, STANDARD)


# --- properties -------------------------------------------------------------------------


@st.composite
def window_layouts(draw: st.DrawFn, n: int, min_width: int = 1) -> list[tuple[int, int]]:
    """Sorted, non-overlapping inclusive row ranges inside ``range(n)``."""
    rows: list[tuple[int, int]] = []
    cursor = draw(st.integers(0, n))
    while cursor < n and draw(st.booleans()):
        last = cursor + draw(st.integers(min_width - 1, 30))
        if last >= n:
            break
        rows.append((cursor, last))
        cursor = last + 1 + draw(st.integers(0, 40))
    return rows


LEVELS = [0.0, 0.25, 0.5, 0.75, 1.0]  # few distinct scores: plenty of ties


@st.composite
def files(draw: st.DrawFn, min_width: int = 1) -> tuple[list[float], list[tuple[int, int]]]:
    n = draw(st.integers(1, 160))
    scores = draw(st.lists(st.sampled_from(LEVELS), min_size=n, max_size=n))
    return scores, draw(window_layouts(n, min_width))


costs_strategy = st.builds(
    CostMatrix,
    tp=st.floats(0.1, 5.0),
    fp=st.floats(0.0, 5.0),
    fn=st.floats(0.1, 5.0),
)


@settings(max_examples=200, deadline=None)
@given(
    corpus=st.lists(files(), min_size=1, max_size=4),
    threshold=st.sampled_from(LEVELS),
    costs=st.one_of(st.sampled_from([p.costs for p in NAB_PROFILES.values()]), costs_strategy),
)
def test_normalised_score_never_exceeds_100(
    corpus: list[tuple[list[float], list[tuple[int, int]]]],
    threshold: float,
    costs: CostMatrix,
) -> None:
    assume(any(rows for _, rows in corpus))
    scored = []
    for scores, rows in corpus:
        ts = _timestamps(len(scores))
        scored.append(score_file(ts, scores, _windows(ts, rows), threshold, costs))
    assert normalise(scored).normalised <= 100.0 + 1e-9


# An independent, loop-by-loop restatement of NAB v1.1's Sweeper (calcSweepScore, then a
# sweep over rows sorted by anomaly score, then scoreDataSet's pick of the threshold row),
# used as an oracle for the vectorised score_file.


def _nab_sigmoid(x: float) -> float:
    return -1.0 if x > 3.0 else 2 * (1 / (1 + math.exp(5 * x))) - 1.0


def _nab_sweep(
    scores: Sequence[float], rows: Sequence[tuple[int, int]], costs: CostMatrix, threshold: float
) -> tuple[float, int, int, int, int] | None:
    n = len(scores)
    max_tp = _nab_sigmoid(-1.0)
    probation = min(math.floor(0.15 * n), 0.15 * 5000)
    starts = {first: (first, last) for first, last in rows}
    current: tuple[int, int] | None = None
    previous: tuple[int, int] | None = None
    points: list[tuple[float, float, int | None]] = []
    for i in range(n):
        current = starts.get(i, current)
        if current is not None:
            first, last = current
            sweep = _nab_sigmoid(-(last - i + 1) / float(last - first + 1)) * costs.tp / max_tp
        elif previous is None:
            sweep = -1.0 * costs.fp
        else:
            first, last = previous
            sweep = _nab_sigmoid(abs(last - i) / float(last - first)) * costs.fp
        if i >= probation:
            points.append((scores[i], sweep, None if current is None else current[0]))
        if current is not None and i == current[1]:
            previous, current = current, None
    ordered = sorted(points, key=lambda p: p[0], reverse=True)
    parts: dict[str | int, float] = {"fp": 0.0}
    parts.update({w: -costs.fn for _, _, w in ordered if w is not None})
    tn = sum(w is None for _, _, w in ordered)
    fn = len(ordered) - tn
    tp = fp = 0
    level = 1.1
    table = []
    for score, sweep, w in ordered:
        if score != level:
            table.append((level, sum(parts.values()), tp, fp, fn, tn))
            level = score
        if w is None:
            fp, tn = fp + 1, tn - 1
            parts["fp"] += sweep
        else:
            tp, fn = tp + 1, fn - 1
            parts[w] = max(parts[w], sweep)
    table.append((level, sum(parts.values()), tp, fp, fn, tn))
    previous_row = None
    for row in table:
        if row[0] == threshold:
            return row[1:]
        if row[0] < threshold:
            return None if previous_row is None else previous_row[1:]
        previous_row = row
    return None  # NAB finds no row (and fails) when the threshold is below every score


@settings(max_examples=300, deadline=None)
@given(
    file=files(min_width=2),  # NAB divides by zero after a one-row window
    threshold=st.sampled_from([*LEVELS, 0.6, 0.1]),
    costs=st.one_of(st.sampled_from([p.costs for p in NAB_PROFILES.values()]), costs_strategy),
)
def test_score_file_matches_nab_sorted_sweep(
    file: tuple[list[float], list[tuple[int, int]]], threshold: float, costs: CostMatrix
) -> None:
    scores, rows = file
    expected = _nab_sweep(scores, rows, costs, threshold)
    assume(expected is not None)
    assert expected is not None
    ts = _timestamps(len(scores))
    fs = score_file(ts, scores, _windows(ts, rows), threshold, costs)
    raw, tp, fp, fn, tn = expected
    assert fs.raw == pytest.approx(raw, rel=1e-12, abs=1e-12)
    assert (fs.tp, fs.fp, fs.fn, fs.tn) == (tp, fp, fn, tn)
