"""Which lines of a write InfluxDB refused, and why (4xx and partial writes).

InfluxDB 1.x answers a write with some bad points with HTTP 400 ``partial write: <reason>
dropped=N``: it stores the good points and drops the rest, but names at most one reason,
and ``N`` does not always count every dropped point (a field type conflict inside the
batch and one against the shard are counted apart; a parse error is not mentioned at all
when a type conflict happened too). So the message alone cannot say which lines were lost.

``identify_refused`` finds them: it matches the lines the message explains (an unparsable
line by its text; a field type conflict by measurement, field and type), then writes the
remaining lines again to see whether the server takes them or names the next reason, and
when a reason names no line (retention, series limits, 2.x/3.x wordings) it bisects.
Writing a line again is safe because an InfluxDB point is keyed by (measurement, tags,
timestamp): rewriting an accepted point with the same fields changes nothing.

The line protocol scanning here is hand-written (about 50 lines) because no maintained
Python package parses line protocol; it only needs to split points and read field types.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from telemetry.influxdb import InfluxRejectedError

_CONFLICT: Final = re.compile(
    r'field type conflict: input field "(?P<field>.*?)" on measurement "(?P<measurement>.*?)" '
    r"is type (?P<input>\w+), already exists as type (?P<existing>\w+)"
)
_UNPARSABLE: Final = re.compile(
    r"unable to parse '(?P<line>.*?)': (?P<reason>.*?)(?=\nunable to parse '| dropped=\d+\s*$|$)",
    re.DOTALL,
)
_DROPPED: Final = re.compile(r"dropped=(\d+)\s*$")
_BOOLEANS: Final = frozenset(
    ["t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"]
)
_UNESCAPE: Final = re.compile(r"\\([ ,=])")


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """An unparsable line as the server quoted it, with its reason."""

    line: str
    reason: str


@dataclass(frozen=True, slots=True)
class FieldTypeConflict:
    """A field written with another type than the one the measurement holds (in the shard)."""

    measurement: str
    field: str
    input_type: str
    existing_type: str

    def __str__(self) -> str:
        return (
            f'field type conflict: field "{self.field}" of measurement "{self.measurement}" '
            f"is {self.existing_type} in InfluxDB, the line has {self.input_type}"
        )


@dataclass(frozen=True, slots=True)
class WriteErrorText:
    """What an InfluxDB write error message says (``parse_write_error``)."""

    partial: bool
    """The server stored the other points of the body."""
    unparsable: tuple[RejectedLine, ...]
    conflicts: tuple[FieldTypeConflict, ...]
    dropped: int
    """The server's ``dropped=N`` (0 when absent); not always every dropped point."""


def parse_write_error(message: str) -> WriteErrorText:
    """Read an InfluxDB 1.x (or 2.x compatibility API) write error message.

    >>> e = parse_write_error('partial write: field type conflict: input field "t" on '
    ...     'measurement "cabinet" is type float, already exists as type string dropped=3')
    >>> e.partial, e.dropped, e.conflicts[0].field, e.conflicts[0].existing_type
    (True, 3, 't', 'string')
    >>> parse_write_error("unable to parse 'x y': invalid field format").unparsable
    (RejectedLine(line='x y', reason='invalid field format'),)
    """
    text = message.strip()
    dropped = _DROPPED.search(text)
    return WriteErrorText(
        partial="partial write" in text,
        unparsable=tuple(
            RejectedLine(m.group("line"), m.group("reason").strip())
            for m in _UNPARSABLE.finditer(text)
        ),
        conflicts=tuple(
            FieldTypeConflict(m["measurement"], m["field"], m["input"], m["existing"])
            for m in _CONFLICT.finditer(text)
        ),
        dropped=int(dropped.group(1)) if dropped else 0,
    )


# -- line protocol scanning -------------------------------------------------------------


def _end_of_key(text: str, i: int) -> int:
    """Index of the space or newline ending the measurement+tags part starting at ``i``."""
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c in " \n":
            return i
        i += 1
    return n


def _end_of_fields(text: str, i: int) -> int:
    """Index of the space or newline ending the fields part (quotes hold anything)."""
    n = len(text)
    quoted = False
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif not quoted and c in " \n":
            return i
        i += 1
    return n


def split_points(text: str) -> list[str]:
    """The points of a line-protocol body (a newline inside a quoted string stays inside)."""
    points: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in "\n\r":  # blank line
            i += 1
            continue
        if text[i] == "#":  # a comment (only at the start of a line)
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        end = _end_of_key(text, i)
        if end < n and text[end] == " ":
            end = _end_of_fields(text, end + 1)
        newline = text.find("\n", end)
        end = n if newline < 0 else newline
        points.append(text[i:end])
        i = end + 1
    return points


def _split_unquoted(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    start, i, quoted = 0, 0, False
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == separator and not quoted:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _value_type(raw: str) -> str:
    if raw.startswith('"'):
        return "string"
    if raw in _BOOLEANS:
        return "boolean"
    if raw.endswith("i"):
        return "integer"
    if raw.endswith("u"):
        return "unsigned"
    return "float"


def field_types(point: str) -> tuple[str, dict[str, str]]:
    """(measurement, {field: InfluxDB type name}) of one point; ``("", {})`` if malformed.

    >>> field_types('cab\\\\ x,ward=a\\\\ b t=1.5,n=2i,s="a b,c",ok=true 1')
    ('cab x', {'t': 'float', 'n': 'integer', 's': 'string', 'ok': 'boolean'})
    """
    key_end = _end_of_key(point, 0)
    if key_end >= len(point):
        return "", {}
    measurement = _partition_unescaped(point[:key_end], ",")[0]  # quotes are literal here
    fields_end = _end_of_fields(point, key_end + 1)
    fields: dict[str, str] = {}
    for item in _split_unquoted(point[key_end + 1 : fields_end], ","):
        name, eq, raw = _partition_unescaped(item, "=")
        if eq:
            fields[_UNESCAPE.sub(r"\1", name)] = _value_type(raw)
    return _UNESCAPE.sub(r"\1", measurement), fields


def _partition_unescaped(item: str, separator: str) -> tuple[str, str, str]:
    i = 0
    while i < len(item):
        if item[i] == "\\":
            i += 2
            continue
        if item[i] == separator:
            return item[:i], separator, item[i + 1 :]
        i += 1
    return item, "", ""


# -- identification ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refused:
    """A point InfluxDB did not store: its index in the written body, text and reason."""

    index: int
    line: str
    reason: str


WriteLines = Callable[[Sequence[str]], None]
"""Writes points; raises ``InfluxRejectedError`` on a 4xx, anything else if InfluxDB is away."""


def _explained(
    points: Sequence[str], indices: Sequence[int], text: WriteErrorText
) -> dict[int, str]:
    """The points among ``indices`` that ``text`` explains, with their reasons."""
    unparsable = {r.line: r.reason for r in text.unparsable}
    found: dict[int, str] = {}
    for i in indices:
        point = points[i]
        if point in unparsable:
            found[i] = f"unparsable: {unparsable[point]}"
            continue
        if not text.conflicts:
            continue
        measurement, types = field_types(point)
        for conflict in text.conflicts:
            kind = types.get(conflict.field)
            if (
                measurement == conflict.measurement
                and kind is not None
                and kind != conflict.existing_type
            ):
                found[i] = str(conflict)
                break
    return found


def identify_refused(
    points: Sequence[str], message: str, write: WriteLines, *, max_requests: int = 32
) -> list[Refused]:
    """The points of a body InfluxDB answered with the 4xx ``message`` that it did not store.

    ``write`` is used to write subsets again (at most ``max_requests`` times); points still
    unexplained when the budget is spent, or when InfluxDB goes away meanwhile, are
    reported as refused with a reason that says so (kept, never silently dropped).
    """
    found: dict[int, str] = {}
    budget = [max_requests]
    away: list[str] = []

    def retry(indices: list[int], last_message: str) -> None:
        if away or budget[0] <= 0:
            why = away[0] if away else "request budget spent"
            for i in indices:
                found[i] = f"not identified ({why}); the server said: {last_message}"
            return
        budget[0] -= 1
        try:
            write([points[i] for i in indices])
        except InfluxRejectedError as exc:
            resolve(indices, exc.message)
        except Exception as exc:  # InfluxDB away: keep the rest, do not guess
            away.append(f"InfluxDB unavailable while identifying: {exc}")
            retry(indices, last_message)

    def resolve(indices: list[int], text: str) -> None:
        explained = _explained(points, indices, parse_write_error(text))
        if explained:
            found.update(explained)
            rest = [i for i in indices if i not in explained]
            if rest:
                retry(rest, text)
        elif len(indices) == 1:
            found[indices[0]] = text
        else:
            middle = len(indices) // 2
            retry(indices[:middle], text)
            retry(indices[middle:], text)

    resolve(list(range(len(points))), message)
    return [Refused(i, points[i], found[i]) for i in sorted(found)]
