"""InfluxDB line protocol: escaping and the encoders of ingest's points.

Escaping is a security boundary: whatever a tag value or string field holds, it must
never end the line, start a new tag or field, or close a quoted string early.

InfluxDB's scanner (1.x; 2.x/3.x are compatible) ends a tag value at a ``,`` or space
whose previous byte is not a backslash, and then un-escapes ``\\,``, ``\\ `` and ``\\=``.
Escaping exactly those three keeps any value in one piece and makes it round-trip
(``x\\,evil=1`` is stored as itself, not as a second tag). Three things cannot be carried
in a tag value and are replaced by visible stand-ins (``stored_tag_value`` says what is
stored): a newline or carriage return (they end the line whatever precedes them) become
the two characters ``\\n``/``\\r``, and a trailing backslash (it would escape the separator
after it) becomes ``⧵`` (U+29F5). String fields are double-quoted with ``\\`` and ``"``
escaped; newlines inside the quotes are legal.

The per-report encoder is the hot path: one ``str.format`` call per report with a
template cached per (kind, metric names), no per-metric Python work.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from telemetry.catalogue import METRICS_BY_ID

_TAG_TRANSLATION: Final = str.maketrans(
    {",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r"}
)
_MEASUREMENT_TRANSLATION: Final = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n", "\r": "\\r"})
_TRAILING_BACKSLASH_STAND_IN: Final = "\u29f5"
_STRING_FIELD_TRANSLATION: Final = str.maketrans({"\\": "\\\\", '"': '\\"'})


def _fix_trailing_backslash(value: str) -> str:
    if value.endswith("\\"):
        return value[:-1] + _TRAILING_BACKSLASH_STAND_IN
    return value


def escape_tag(value: str) -> str:
    """Escape a tag key or value (or a field key)."""
    return _fix_trailing_backslash(value).translate(_TAG_TRANSLATION)


def escape_measurement(value: str) -> str:
    """Escape a measurement name."""
    return _fix_trailing_backslash(value).translate(_MEASUREMENT_TRANSLATION)


def quote_string_field(value: str) -> str:
    """A string field value, quoted and escaped."""
    return '"' + value.translate(_STRING_FIELD_TRANSLATION) + '"'


def stored_tag_value(value: str) -> str:
    """What InfluxDB stores for a tag value written with ``escape_tag``.

    Equal to ``value`` except for the stand-ins of the module docstring. Used by tests and
    by readers that want to look a written tag value up again.
    """
    return _fix_trailing_backslash(value).replace("\n", "\\n").replace("\r", "\\r")


def format_field_value(value: float | int | bool | str) -> str:
    """One field value in line protocol syntax (bool, integer with ``i``, float, string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return quote_string_field(value)


def series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """``measurement,tag=value,...`` with tags sorted by key, as InfluxDB prefers."""
    parts = [escape_measurement(measurement)]
    parts.extend(f"{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v != "")
    return ",".join(parts)


def encode_point(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, float | int | bool | str],
    ts_ms: int | None = None,
) -> str:
    """One point as a line (no trailing newline); timestamps are in ms.

    Empty tag values are left out (InfluxDB rejects them); at least one field is needed.
    """
    if not fields:
        raise ValueError("a point needs at least one field")
    field_text = ",".join(f"{escape_tag(k)}={format_field_value(v)}" for k, v in fields.items())
    line = f"{series_key(measurement, tags)} {field_text}"
    return line if ts_ms is None else f"{line} {ts_ms}"


class ReportTemplates:
    """Cached ``str.format`` templates: ``"{series} m1={},m2={} {ts}"`` per metric-name tuple.

    Metric names come from the catalogue (checked by the decoder), so they need no
    escaping; values are floats (``repr``) or bools (``True``/``False``, both literals
    InfluxDB accepts as booleans), so ``str.format`` renders them correctly as they are.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, ...], str] = {}

    def template(self, names: tuple[str, ...]) -> str:
        found = self._cache.get(names)
        if found is None:
            fields = ",".join(f"{name}={{}}" for name in names)
            found = self._cache[names] = "{} " + fields + " {}"
        return found

    def line(self, series: str, metrics: Mapping[str, float | bool], ts_ms: int) -> str:
        """The line of one report; ``series`` comes from ``series_key``."""
        return self.template(tuple(metrics)).format(series, *metrics.values(), ts_ms)


SCORE_MEASUREMENT = "citywatch_score"


def score_line(device: str, ward: str, metric: int, ts_ms: int, value: float, score: float) -> str:
    """One ``citywatch_score`` point: a reading's anomaly score beside its value (tags
    device, kind, metric, ward). The plain way; :class:`ScoreLines` is its fast twin."""
    spec = METRICS_BY_ID[metric]
    return encode_point(
        SCORE_MEASUREMENT,
        {"device": device, "kind": spec.kind.value, "metric": spec.name, "ward": ward},
        {"score": round(score, 4), "value": float(value)},
        ts_ms,
    )


class ScoreLines:
    """``score_line`` for many readings: each (device, metric, ward)'s series key is
    escaped once and cached (bounded: ids come from devices); the two float fields are
    ``repr``, as ``encode_point`` writes them."""

    def __init__(self, max_keys: int = 500_000) -> None:
        self.max_keys = max_keys
        self._keys: dict[tuple[str, int, str], str] = {}

    def lines(
        self,
        devices: Sequence[str],
        wards: Sequence[str],
        metrics: Sequence[int],
        ts_ms: Sequence[int],
        values: Sequence[float],
        scores: Sequence[float],
    ) -> list[str]:
        keys = self._keys
        if len(keys) > self.max_keys:
            keys.clear()
        out = []
        for device, ward, metric, ts, value, score in zip(
            devices, wards, metrics, ts_ms, values, scores, strict=True
        ):
            key = keys.get((device, metric, ward))
            if key is None:
                spec = METRICS_BY_ID[metric]
                tags = {"device": device, "kind": spec.kind.value, "metric": spec.name}
                key = keys[device, metric, ward] = series_key(
                    SCORE_MEASUREMENT, {**tags, "ward": ward}
                )
            out.append(f"{key} score={round(score, 4)!r},value={value!r} {ts}")
        return out


def join_lines(lines: Iterable[str]) -> bytes:
    """A request body: lines joined by newlines, UTF-8."""
    return "\n".join(lines).encode()
