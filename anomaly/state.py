"""The detector's state: one row per series in three tables (``anomaly/layout.py``).

Columns are also reachable by name (``state["core_last_x"]`` is a view of one column),
which is how the device rules, checkpoints and tests read them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import numpy.typing as npt

from anomaly.layout import (
    F32_COLUMNS,
    F32_FILL,
    F32_NAMES,
    F64_COLUMNS,
    F64_FILL,
    F64_NAMES,
    TOD_FILL,
    TOD_WIDTH,
)

Array = npt.NDArray[np.floating]

_TABLES = ("f64", "f32", "tod")


class State:
    """The three state tables, grown together by doubling.

    Examples
    --------
    >>> st = State(capacity=2, tod_bins=24)
    >>> st.f64.shape, st.f32.dtype.name, st.tod.shape
    ((2, 20), 'float32', (2, 72))
    >>> st.grow(5); st["core_n"].shape
    (5,)
    """

    def __init__(self, capacity: int, tod_bins: int) -> None:
        self.tod_bins = tod_bins
        self.f64 = np.empty((0, F64_COLUMNS), dtype=np.float64)
        self.f32 = np.empty((0, F32_COLUMNS), dtype=np.float32)
        self.tod = np.empty((0, TOD_WIDTH * tod_bins), dtype=np.float32)
        self.grow(capacity)

    @property
    def capacity(self) -> int:
        return len(self.f64)

    def _fresh(self, rows: int) -> tuple[Array, Array, Array]:
        f64 = np.tile(np.array(F64_FILL, dtype=np.float64), (rows, 1))
        f32 = np.tile(np.array(F32_FILL, dtype=np.float32), (rows, 1))
        tod = np.tile(np.array(TOD_FILL * self.tod_bins, dtype=np.float32), (rows, 1))
        return f64, f32, tod

    def grow(self, capacity: int) -> None:
        """At least ``capacity`` rows; new rows hold the initial state."""
        if capacity <= self.capacity:
            return
        f64, f32, tod = self._fresh(capacity - self.capacity)
        self.f64 = np.concatenate([self.f64, f64])
        self.f32 = np.concatenate([self.f32, f32])
        self.tod = np.concatenate([self.tod, tod])

    def __getitem__(self, name: str) -> Array:
        """One column by name (a view)."""
        if name in _F64_INDEX:
            return self.f64[:, _F64_INDEX[name]]
        if name in _F32_INDEX:
            return self.f32[:, _F32_INDEX[name]]
        if name == "tod":
            return self.tod
        raise KeyError(name)

    def gather(self, name: str, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """``self[name][rows]`` as float64, read from the raveled table: ``take`` on a
        column view would first copy the whole strided column."""
        table: Array = self.f64 if name in _F64_INDEX else self.f32
        col = _F64_INDEX[name] if name in _F64_INDEX else _F32_INDEX[name]
        flat = rows * table.shape[1]
        flat += col
        got: npt.NDArray[np.float64] = table.reshape(-1).take(flat).astype(np.float64, copy=False)
        return got

    def __iter__(self) -> Iterator[str]:
        """The column names (and ``tod``, the hour-of-day table)."""
        yield from F64_NAMES
        yield from F32_NAMES
        yield "tod"

    def bytes_per_slot(self) -> int:
        """State bytes each series costs."""
        return sum(t.itemsize * t.shape[1] for t in (self.f64, self.f32, self.tod))

    def snapshot(self, n: int) -> dict[str, Array]:
        """Copies of the first ``n`` rows of every table."""
        return {"f64": self.f64[:n].copy(), "f32": self.f32[:n].copy(), "tod": self.tod[:n].copy()}

    def load(self, tables: Mapping[str, Array]) -> None:
        """Overwrite the first rows of every table from a snapshot (shapes must fit)."""
        for name in _TABLES:
            if name not in tables:
                raise ValueError(f"checkpoint lacks the state table {name!r}")
            src, dst = tables[name], getattr(self, name)
            if src.shape[1:] != dst.shape[1:] or len(src) > len(dst):
                raise ValueError(
                    f"checkpoint table {name!r} has shape {src.shape}, expected (n, {dst.shape[1]})"
                )
            dst[: len(src)] = src


_F64_INDEX = {name: i for i, name in enumerate(F64_NAMES)}
_F32_INDEX = {name: i for i, name in enumerate(F32_NAMES)}
