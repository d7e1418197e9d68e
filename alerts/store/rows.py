"""Row mapping: the store's tables to and from the alert layer's records.

One generic mapper reads the records' own declarations (:mod:`alerts.model`): a field is
stored in the column of its name, or the one its metadata names (``meta(column=…)``); a
nested record (an alert's :class:`~alerts.model.AlertKey`) spreads over its fields'
columns. Values convert by the field's type: enums as their values, tuples as JSON lists
(a tuple of records, a silence's matchers, as a list of objects).
"""

import dataclasses
import functools
import types
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from alerts import lifecycle
from alerts.correlation import IncidentScope
from alerts.model import (
    Alert,
    AlertChange,
    AlertState,
    ApiKey,
    Comment,
    Delivery,
    Incident,
    IncidentKind,
    Silence,
)
from alerts.policy import Policy

R = TypeVar("R")
Row = Mapping[Any, Any]
"""A table row by column name (``sqlalchemy.RowMapping``, or a plain dict)."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    """How one field of a record is stored: in ``column``, or (a nested record) in the
    columns of ``nested``'s fields."""

    name: str
    column: str
    decode: Callable[[Any], Any]
    nested: type | None = None


_FIELDS: dict[type, tuple[_Field, ...]] = {}


def _fields_of(record: type) -> tuple[_Field, ...]:
    """The stored fields of a record type, read once from its declaration."""
    found = _FIELDS.get(record)
    if found is None:
        hints = get_type_hints(record)
        found = _FIELDS[record] = tuple(
            _Field(f.name, "", _same, hints[f.name])
            if dataclasses.is_dataclass(hints[f.name])
            else _Field(f.name, f.metadata.get("column", f.name), _decoder(hints[f.name]))
            for f in dataclasses.fields(record)
        )
    return found


def _same(value: Any) -> Any:
    return value


def _decoder(hint: Any) -> Callable[[Any], Any]:
    """Column value -> field value, for a field of type ``hint`` (``X | None`` too)."""
    optional = get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)
    if optional:
        (hint,) = [a for a in get_args(hint) if a is not type(None)]
    convert: Callable[[Any], Any]
    if isinstance(hint, type) and issubclass(hint, Enum):
        convert = hint
    elif get_origin(hint) is tuple:
        item = get_args(hint)[0]
        records = isinstance(item, type) and dataclasses.is_dataclass(item)
        # a tuple of records is kept as a JSON list of objects
        convert = functools.partial(_records, item) if records else tuple
    else:
        return _same
    return (lambda v: None if v is None else convert(v)) if optional else convert


def _records(record: type[R], items: Any) -> tuple[R, ...]:
    """A tuple of ``record`` from a JSON column's list of objects (a silence's matchers)."""
    hints = get_type_hints(record)
    return tuple(
        record(**{name: _decoder(hints[name])(v) for name, v in item.items()}) for item in items
    )


def _encode(value: Any) -> Any:
    """Field value -> column value (a tuple of records: a JSON list of objects)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def record_of(record: type[R], row: Row, **given: Any) -> R:
    """A ``record`` (a dataclass of :mod:`alerts.model`) from a table row; ``given``
    supplies the fields that are not columns of the row (an incident's children)."""
    values = {
        f.name: record_of(f.nested, row) if f.nested is not None else f.decode(row[f.column])
        for f in _fields_of(record)
        if f.name not in given
    }
    return record(**values, **given)


def row_of(record: Any) -> dict[str, Any]:
    """A record's column values (the inverse of :func:`record_of`)."""
    row: dict[str, Any] = {}
    for f in _fields_of(type(record)):
        value = getattr(record, f.name)
        if f.nested is not None:
            row.update(row_of(value))
        else:
            row[f.column] = _encode(value)
    return row


# -------------------------------------------------------------------- per table


def columns_of(state: AlertState, policy: Policy) -> dict[str, Any]:
    """An ``alerts`` row for a state: its fields, and the columns derived from them."""
    key = state.key
    return {
        "due_at": lifecycle.next_due(state, policy),
        "open_key": key.open_key if state.is_open else None,
        "dedup_key": key.open_key,
        **row_of(state),
    }


def state_of(row: Row) -> AlertState:
    return record_of(AlertState, row)


def alert_of(row: Row) -> Alert:
    return record_of(Alert, row)


def change_of(row: Row, alert: Alert | None = None) -> AlertChange:
    return record_of(AlertChange, row, alert=alert)


def silence_of(row: Row) -> Silence:
    return record_of(Silence, row)


def api_key_of(row: Row) -> ApiKey:
    return record_of(ApiKey, row)


def comment_of(row: Row) -> Comment:
    return record_of(Comment, row)


def delivery_of(row: Row) -> Delivery:
    return record_of(Delivery, row)


def incident_of(row: Row, children: list[int]) -> Incident:
    return record_of(Incident, row, children=children)


def scope_of_row(row: Row) -> IncidentScope:
    return IncidentScope(
        IncidentKind(row["kind"]), row["ward"], row["route"], row["position"], row["device"] or ""
    )
