"""Ordering a list: ``sort=-raised_at,severity`` as the store reads it.

A :class:`Sort` is a whitelisted field and a direction. Each list names the fields it may
be sorted by (:data:`ALERT_SORTS`, :data:`INCIDENT_SORTS`, :data:`SILENCE_SORTS`); a
severity sorts by urgency (warning < minor < major < critical), not alphabetically. Empty
values (``NULL``) come last either way, in SQLite and PostgreSQL alike, and the id (newest
first) breaks ties, so paging is stable.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from alerts.model import SEVERITY_RANK
from alerts.schema import alerts, incidents, silences


@dataclass(frozen=True, slots=True)
class Sort:
    """One sort key: ``field`` ascending, or descending (written ``-field``)."""

    field: str
    descending: bool = False

    @classmethod
    def parse(cls, text: str, allowed: Sequence[str]) -> tuple["Sort", ...]:
        """``"-raised_at,severity"`` -> sort keys; ``ValueError`` naming the first field
        that is not in ``allowed`` (or repeated)."""
        keys: list[Sort] = []
        for raw in text.split(","):
            part = raw.strip()
            name = part.removeprefix("-")
            if name not in allowed:
                raise ValueError(
                    f"cannot sort by {name!r}; sort by one or more of {', '.join(allowed)}, "
                    "comma-separated, each optionally prefixed with - for descending"
                )
            if any(k.field == name for k in keys):
                raise ValueError(f"{name!r} is given twice in sort")
            keys.append(cls(name, part.startswith("-")))
        return tuple(keys)

    def __str__(self) -> str:
        return f"-{self.field}" if self.descending else self.field


def _severity(column: sa.ColumnElement[str]) -> sa.ColumnElement[int]:
    return sa.case({s.value: rank for s, rank in SEVERITY_RANK.items()}, value=column)


def _columns(table: sa.Table, names: Sequence[str]) -> dict[str, sa.ColumnElement[Any]]:
    found: dict[str, sa.ColumnElement[Any]] = {}
    for name in names:
        column = table.c[name]
        found[name] = _severity(column) if name == "severity" else column
    return found


ALERT_SORTS = _columns(
    alerts,
    [
        "id",
        "opened_at",
        "raised_at",
        "last_seen",
        "cleared_at",
        "started_at",
        "severity",
        "state",
        "type",
        "ward",
        "device",
        "peak_score",
        "count",
    ],
)
INCIDENT_SORTS = _columns(incidents, ["id", "opened_at", "closed_at", "kind", "ward"])
SILENCE_SORTS = _columns(
    silences, ["id", "starts_at", "ends_at", "ward", "device", "type", "severity"]
)


def order_by(
    sort: Sequence[Sort], columns: Mapping[str, sa.ColumnElement[Any]], id_column: sa.Column[int]
) -> list[sa.ColumnElement[Any]]:
    """ORDER BY clauses for ``sort`` (empty: newest first), ties broken by id descending."""
    clauses: list[sa.ColumnElement[Any]] = []
    for key in sort:
        if key.field not in columns:
            raise ValueError(f"cannot sort by {key.field!r}; one of {', '.join(columns)}")
        column = columns[key.field]
        clauses.append((column.desc() if key.descending else column.asc()).nulls_last())
    if not any(key.field == "id" for key in sort):
        clauses.append(id_column.desc())
    return clauses
