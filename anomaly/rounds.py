"""Split a batch into rounds: round r holds the r-th reading (in time order) of each series.

Within a round every series appears at most once, so the state of all of them can be
updated with one vectorised step; the rounds run in order, which makes a batch give the
same result as feeding its readings one at a time in time order. The Python loop runs
over ranks (a handful), never over readings.

The grouping by series sorts ``key << bits | index`` (unique values, so any sort is
stable) with numpy's SIMD sort of int64: for a batch of a million readings ~2.4× faster
than an LSD radix sort on 16-bit digits (``argsort(kind="stable")`` of ``uint16``),
which stays for keys too wide to pack.
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
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    bits = (n - 1).bit_length()
    top = int(keys.max())
    if top.bit_length() + bits <= 62:
        packed = keys.astype(np.int64) << bits
        np.bitwise_or(packed, np.arange(n, dtype=np.int64), out=packed)
        packed.sort()
        np.bitwise_and(packed, (1 << bits) - 1, out=packed)
        return packed
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
