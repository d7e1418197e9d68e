"""The columnar batch of readings shared by ingest and the detector.

One row per (report, metric). Columns are numpy arrays so the detector can work on a
whole batch with vectorised operations; booleans travel as 0.0/1.0.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from telemetry.catalogue import CATALOGUE
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
        """Flatten decoded reports (and the ward each came from) into columns."""
        if len(reports) != len(wards):
            raise ValueError("one ward per report is needed")
        devices: list[str] = []
        ward_col: list[str] = []
        metric_ids: list[int] = []
        stamps: list[int] = []
        values: list[float] = []
        for report, ward in zip(reports, wards, strict=True):
            specs = CATALOGUE[report.kind]
            n = len(report.metrics)
            devices.extend([report.device] * n)
            ward_col.extend([ward] * n)
            stamps.extend([report.ts] * n)
            for name, value in report.metrics.items():
                metric_ids.append(specs[name].id)
                values.append(float(value))
        return cls(
            np.array(devices, dtype=object),
            np.array(ward_col, dtype=object),
            np.array(metric_ids, dtype=np.int16),
            np.array(stamps, dtype=np.int64),
            np.array(values, dtype=np.float64),
        )
