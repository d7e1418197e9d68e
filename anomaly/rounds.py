"""Split a batch into rounds: round r holds the r-th reading (in time order) of each series.

Within a round every series appears at most once, so the state of all of them can be
updated with one vectorised step; the rounds run in order, which makes a batch give the
same result as feeding its readings one at a time in time order. The Python loop runs
over ranks (a handful), never over readings.

The grouping by series is a stable LSD radix sort on 16-bit digits (numpy's
``argsort(kind="stable")`` of ``uint16`` is a counting sort, O(n)): for a batch of a
million readings it is ~3× faster than a comparison sort of the same keys.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from anomaly.context import nonzero, some

IntArray = npt.NDArray[np.int64]


def stable_order(keys: IntArray) -> IntArray:
    """Indices that sort non-negative int ``keys`` stably (ties keep the input order).

    Examples
    --------
    >>> stable_order(np.array([70_000, 3, 70_000, 0, 3]))
    array([3, 1, 4, 0, 2])
    """
    n = len(keys)
    if n < 2048:  # a comparison sort is quicker than the radix passes' fixed cost
        return np.argsort(keys, kind="stable").astype(np.int64, copy=False)
    top = int(keys.max())
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    shift = 16
    while top >> shift:
        digit = ((keys[order] >> shift) & 0xFFFF).astype(np.uint16)
        order = order[np.argsort(digit, kind="stable")]
        shift += 16
    return order.astype(np.int64, copy=False)


def plan_rounds(slots: IntArray, ts_ms: npt.NDArray[np.int64]) -> list[IntArray]:
    """Indices into the batch for each round; ties in time keep the input order.

    Inside a round, indices are sorted by slot, so the state gathers walk memory forwards.

    Examples
    --------
    >>> import numpy as np
    >>> plan_rounds(np.array([5, 3, 5, 5]), np.array([30, 10, 10, 20]))
    [array([1, 2]), array([3]), array([0])]
    """
    n = len(slots)
    if n == 0:
        return []
    # Run lengths of the slots from the sorted order: O(n), where a bincount would cost
    # O(series) for every batch (the fixed cost of a small batch).
    order = stable_order(slots)
    sorted_slots = slots.take(order)
    same = sorted_slots[1:] == sorted_slots[:-1]
    if not some(same):  # the usual live batch: every series at most once, one round
        return [order]
    sorted_ts = ts_ms.take(order)
    if some(same & (sorted_ts[1:] < sorted_ts[:-1])):
        index = np.arange(n, dtype=np.int64)
        order = np.lexsort((index, ts_ms, slots))  # readings of a series out of time order
    # Segment starts of the slots present, in slot order, and their sizes.
    starts = nonzero(np.concatenate(([True], ~same)))
    sizes = np.diff(np.append(starts, n))
    rounds: list[IntArray] = []
    for rank in range(int(sizes.max())):
        if rank:
            keep = sizes > rank
            starts, sizes = starts[keep], sizes[keep]
        rounds.append(order[starts + rank])
    return rounds
