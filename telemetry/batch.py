"""The columnar batch of readings shared by ingest and the detector.

One row per (report, metric). Columns are numpy arrays so the detector can work on a
whole batch with vectorised operations; booleans travel as 0.0/1.0.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from telemetry.catalogue import CATALOGUE
from telemetry.kinds import DeviceKind
from telemetry.payload import Report


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Readings in columns of equal length."""

    device: npt.NDArray[np.object_]
    """Device id (str) of each reading."""
    ward: npt.NDArray[np.object_]
    """Ward codename (str) of each reading."""
    metric: npt.NDArray[np.int16]
    """Catalogue metric id of each reading."""
    ts_ms: npt.NDArray[np.int64]
    """Device timestamp, ms since the epoch."""
    value: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.value)
        for name in ("device", "ward", "metric", "ts_ms"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"column {name} has {len(getattr(self, name))} rows, value has {n}"
                )

    def __len__(self) -> int:
        return len(self.value)

    @classmethod
    def empty(cls) -> "ReadingBatch":
        """A batch with no rows."""
        return cls(
            np.empty(0, dtype=object),
            np.empty(0, dtype=object),
            np.empty(0, dtype=np.int16),
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.float64),
        )

    @classmethod
    def from_reports(cls, reports: Sequence[Report], wards: Sequence[str]) -> "ReadingBatch":
        """Flatten decoded reports (and the ward each came from) into columns.

        Rows follow the reports in order, each report's metrics in its own order. Reports
        with the same (kind, metric names) — a fleet sends few such shapes — are gathered
        and flattened together with numpy (a 2-D array of their values, per-report columns
        repeated), so the cost per reading is C work, not a Python append.
        """
        if len(reports) != len(wards):
            raise ValueError("one ward per report is needed")
        if not reports:
            return cls.empty()
        groups: dict[tuple[DeviceKind, tuple[str, ...]], list[int]] = {}
        for i, report in enumerate(reports):
            groups.setdefault((report.kind, tuple(report.metrics)), []).append(i)
        counts = np.fromiter((len(r.metrics) for r in reports), np.int64, len(reports))
        starts = np.zeros(len(reports), np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        total = int(counts.sum())
        metric = np.empty(total, np.int16)
        value = np.empty(total, np.float64)
        for (kind, names), members in groups.items():
            specs = CATALOGUE[kind]
            ids = np.array([specs[name].id for name in names], np.int16)
            rows = np.array([tuple(reports[i].metrics.values()) for i in members], np.float64)
            at = (starts[members][:, None] + np.arange(len(names))).ravel()
            metric[at] = np.tile(ids, len(members))
            value[at] = rows.ravel()
        return cls(
            np.repeat(np.array([r.device for r in reports], dtype=object), counts),
            np.repeat(np.array(wards, dtype=object), counts),
            metric,
            np.repeat(np.fromiter((r.ts for r in reports), np.int64, len(reports)), counts),
            value,
        )
