"""What a sub-detector sees of one round: the readings and the series' shared state.

The detector core keeps a few columns every sub-detector may read (readings learned,
last value and time, when the current value began); each sub-detector keeps its own
columns in the same :class:`Store`, so growth and checkpoints treat all state alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from anomaly.config import DetectorConfig

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class Store:
    """Named state arrays whose first axis is the slot; they grow together.

    Examples
    --------
    >>> s = Store()
    >>> s.add("mean", 2, 0.0); s.add("bins", 2, float("nan"), width=3)
    >>> s.grow(4); s["mean"].shape, s["bins"].shape
    ((4,), (4, 3))
    """

    def __init__(self) -> None:
        self._arrays: dict[str, FloatArray] = {}
        self._fill: dict[str, float] = {}
        self._capacity = 0
        """The fewest slots every array holds."""

    def add(self, name: str, capacity: int, fill: float, width: int = 0) -> None:
        """Allocate a column (``width`` 0) or a ``capacity × width`` table."""
        if name in self._arrays:
            raise ValueError(f"state column {name!r} allocated twice")
        shape = (capacity, width) if width else (capacity,)
        self._arrays[name] = np.full(shape, fill, dtype=np.float64)
        self._fill[name] = fill
        self._capacity = min(len(a) for a in self._arrays.values())

    def __getitem__(self, name: str) -> FloatArray:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def grow(self, capacity: int) -> None:
        """Extend every array to ``capacity`` slots with its initial value."""
        if capacity <= self._capacity:  # every batch asks; the registry rarely grew
            return
        self._capacity = capacity
        for name, arr in self._arrays.items():
            if len(arr) < capacity:
                extra = np.full((capacity - len(arr), *arr.shape[1:]), self._fill[name])
                self._arrays[name] = np.concatenate([arr, extra])

    def bytes_per_slot(self) -> int:
        """State bytes each series costs."""
        return sum(a.itemsize * int(np.prod(a.shape[1:])) for a in self._arrays.values())

    def snapshot(self, n: int) -> dict[str, FloatArray]:
        """Copies of the first ``n`` slots of every array."""
        return {name: arr[:n].copy() for name, arr in self._arrays.items()}

    def load(self, arrays: Mapping[str, FloatArray]) -> None:
        """Overwrite the first rows of every array from a snapshot (shapes must fit)."""
        missing = set(self._arrays) - set(arrays)
        if missing:
            raise ValueError(f"checkpoint lacks state column(s) {sorted(missing)}")
        for name, arr in self._arrays.items():
            src = arrays[name]
            if src.shape[1:] != arr.shape[1:] or len(src) > len(arr):
                raise ValueError(f"checkpoint column {name!r} has shape {src.shape}")
            arr[: len(src)] = src


def some(mask: npt.NDArray[Any]) -> bool:
    """``mask.any()`` (truthiness, NaN counts) at a third of its fixed cost: a small
    round pays that cost dozens of times."""
    return int(np.count_nonzero(mask)) != 0


def every(mask: npt.NDArray[Any]) -> bool:
    """``mask.all()``, likewise."""
    return int(np.count_nonzero(mask)) == mask.size


def nonzero(mask: npt.NDArray[Any]) -> IntArray:
    """``np.flatnonzero`` of a 1-D array without its Python wrapper."""
    found: IntArray = mask.nonzero()[0]
    return found


def put(
    column: FloatArray,
    slots: IntArray,
    ok: BoolArray,
    new: FloatArray,
    all_ok: bool | None = None,
) -> None:
    """``column[slots] = new`` where ``ok``, else unchanged (``slots`` unique).

    The common round has every reading ``ok``: a plain scatter then, without the extra
    gather and select the masked form costs. ``all_ok`` is ``ok.all()`` if the caller
    knows it (a round computes it once for all its columns).
    """
    if every(ok) if all_ok is None else all_ok:
        column[slots] = new
    else:
        column[slots] = np.where(ok, new, column.take(slots))


@dataclass(slots=True)
class Round:
    """One round: at most one reading per series, every array of the same length."""

    config: DetectorConfig
    slots: IntArray
    ts_ms: IntArray
    x: FloatArray
    learnable: BoolArray
    """Finite readings (others are scored 0 and never learned)."""
    statistical: BoolArray
    """Readings of float metrics (bool metrics only go through limits and rules)."""
    n: FloatArray
    """Readings of the series learned before this one."""
    warm: BoolArray
    """``n >= warmup`` (``n``: readings the statistical detectors have learned): the
    series may score statistically."""
    last_x: FloatArray
    """Previous value (NaN for a series' first reading)."""
    last_ts: FloatArray
    since_ts: FloatArray
    """When the previous value began (its run start)."""
    first_ts: FloatArray
    period_ms: FloatArray
    """The catalogue's reporting period, NaN for generic series."""
    expected_ms: FloatArray
    """The period to expect: the catalogue's, else the one learned (NaN until known)."""
    pred: FloatArray
    """The Holt level + trend forecast for this reading's time (NaN for a first one)."""
    limits: FloatArray
    """``(m, 9)``: warn_low, warn_high, crit_low, crit_high (NaN = none), margin,
    valid_min, valid_max (the catalogue's physical range; NaN for generic series),
    off_value (NaN = none), the sensor's noise floor (half its accuracy; NaN = none)."""
    dt_ms: FloatArray
    """Time since the series' previous reading (NaN for its first one, >= 0)."""
    learn_ok: BoolArray
    """``learnable & statistical``, less readings of a metric's off value (a fan its
    controller stopped): the readings the statistical detectors learn from."""
    all_learnable: bool
    """``learnable.all()``, computed once: most rounds skip the masked scatter."""
    all_learn_ok: bool
    """``learn_ok.all()``."""
    judge_ok: BoolArray
    """``warm & learn_ok``: the readings the statistical detectors may score."""
    all_warm: bool
    all_judge_ok: bool
    """``judge_ok.all()``: the usual round of warm series skips the score gates."""
    inv_n1: FloatArray
    """``1 / (n + 1)``: the running-mean weight every EWMA starts with."""
    hlevel: FloatArray
    """The Holt level and trend (per hour) before this reading."""
    trend: FloatArray
    learned_ms: FloatArray
    """The reporting period learned from the gaps (NaN until known)."""
    cache: dict[str, Any] = field(default_factory=dict)
    """Intermediates a sub-detector computed in ``score`` and reuses in ``learn``."""

    @property
    def sensor_floor(self) -> FloatArray:
        """Per reading: the sensor's noise floor, half its stated accuracy (NaN: none)."""
        floor: FloatArray = self.limits[:, 8]
        return floor

    def __len__(self) -> int:
        return len(self.x)
