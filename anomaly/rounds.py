"""Split a batch into rounds: round r holds the r-th reading (in time order) of each series.

Within a round every series appears at most once, so the state of all of them can be
updated with one vectorised step; the rounds run in order, which makes a batch give the
same result as feeding its readings one at a time in time order. The Python loop runs
over ranks (a handful), never over readings.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

_IDX_BITS = 24


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
    index = np.arange(n, dtype=np.int64)
    # Fast path: every series at most once (the usual live batch): one round.
    marker = np.empty(int(slots.max()) + 1, dtype=np.int64)
    marker[slots] = index
    if np.array_equal(marker[slots], index):
        return [np.argsort(slots, kind="stable").astype(np.int64)]
    if n < 1 << _IDX_BITS and int(slots.max()) < 1 << (62 - _IDX_BITS):
        # One sort of a packed (slot, input position) key: faster than a two-key sort.
        order = np.sort((slots << _IDX_BITS) | index) & ((1 << _IDX_BITS) - 1)
    else:
        order = np.argsort(slots, kind="stable")
    sorted_slots = slots[order]
    same = sorted_slots[1:] == sorted_slots[:-1]
    sorted_ts = ts_ms[order]
    if np.any(same & (sorted_ts[1:] < sorted_ts[:-1])):
        order = np.lexsort((index, ts_ms, slots))  # readings of a series out of time order
        sorted_slots = slots[order]
        same = sorted_slots[1:] == sorted_slots[:-1]
    starts = np.flatnonzero(np.concatenate(([True], ~same)))
    sizes = np.diff(np.append(starts, n))
    rounds: list[IntArray] = []
    for rank in range(int(sizes.max())):
        live = starts[sizes > rank] if rank else starts
        rounds.append(order[live + rank])
    return rounds
