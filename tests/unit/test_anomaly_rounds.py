"""Rounds on large batches (packed sort, radix fallback): equal to a plain lexsort reference."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly.rounds import plan_rounds, stable_order


def _reference(slots: np.ndarray, ts: np.ndarray) -> list[np.ndarray]:
    """Rank of each reading within its series in (time, input) order, then by slot."""
    order = np.lexsort((np.arange(len(slots)), ts, slots))
    sorted_slots = slots[order]
    starts = np.flatnonzero(np.r_[True, sorted_slots[1:] != sorted_slots[:-1]])
    rank = np.arange(len(slots)) - np.repeat(starts, np.diff(np.r_[starts, len(slots)]))
    return [order[rank == r] for r in range(int(rank.max()) + 1)]


@pytest.mark.parametrize("top", [50, 70_000, 5_000_000])
@pytest.mark.parametrize("in_time_order", [True, False])
def test_plan_rounds_matches_reference(top: int, in_time_order: bool) -> None:
    rng = np.random.default_rng(top)
    n = 20_000
    slots = rng.integers(0, top, n).astype(np.int64)
    ts = np.arange(n, dtype=np.int64) if in_time_order else rng.integers(0, 50, n)
    got = plan_rounds(slots, ts)
    want = _reference(slots, ts)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_stable_order_keeps_ties_in_input_order() -> None:
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 200_000, 10_000).astype(np.int64)
    np.testing.assert_array_equal(stable_order(keys), np.argsort(keys, kind="stable"))


@pytest.mark.parametrize("top", [1, 3, 70_000, 2**45])
@pytest.mark.parametrize("n", [0, 1, 2, 999, 5_000])
def test_stable_order_packed_and_wide_keys(top: int, n: int) -> None:
    # Keys too wide to pack beside the index take the radix path: same order.
    keys = np.random.default_rng(n).integers(0, top, n).astype(np.int64)
    np.testing.assert_array_equal(stable_order(keys), np.argsort(keys, kind="stable"))
