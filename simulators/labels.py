"""Ground-truth labels: which device's which metric was faulty when, as CSV."""

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LABEL_COLUMNS = ("device", "ward", "metric", "fault", "start", "end", "scenario")


@dataclass(frozen=True, slots=True)
class Label:
    """One device x metric under one fault. ``metric`` is ``*`` for device-wide faults."""

    device: str
    ward: str
    metric: str
    fault: str
    start_ms: int
    end_ms: int
    scenario: str

    def covers(self, device: str, metric: str, ts_ms: int) -> bool:
        """Whether a reading of ``metric`` on ``device`` at ``ts_ms`` falls under this label."""
        return (
            device == self.device
            and self.metric in ("*", metric)
            and self.start_ms <= ts_ms <= self.end_ms
        )


def iso_utc(ms: int) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-07-01T12:00:00.000Z``."""
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def parse_iso_utc(text: str) -> int:
    """Milliseconds since the epoch from an ISO 8601 timestamp (naive means UTC)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def write_labels(path: Path, labels: Iterable[Label]) -> int:
    """Write labels as CSV with a header; return how many rows were written."""
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(LABEL_COLUMNS)
        for label in labels:
            writer.writerow(
                (
                    label.device,
                    label.ward,
                    label.metric,
                    label.fault,
                    iso_utc(label.start_ms),
                    iso_utc(label.end_ms),
                    label.scenario,
                )
            )
            rows += 1
    return rows


def read_labels(path: Path) -> list[Label]:
    """Read a labels CSV written by ``write_labels``."""
    with path.open(newline="", encoding="utf-8") as src:
        return [
            Label(
                row["device"],
                row["ward"],
                row["metric"],
                row["fault"],
                parse_iso_utc(row["start"]),
                parse_iso_utc(row["end"]),
                row["scenario"],
            )
            for row in csv.DictReader(src)
        ]
