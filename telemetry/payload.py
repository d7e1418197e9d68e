"""Payload schema v1 (msgspec structs) and the one place messages are decoded.

A report is one device's periodic message carrying several metrics and the device's own
timestamp (``ts``, integer milliseconds since the Unix epoch, UTC) and a per-device
sequence number (``seq``, counting up from the device's boot) that makes duplicates and
gaps visible. Every decode either returns a typed value or raises ``DecodeError`` naming
the field and the reason; nothing is silently dropped or coerced.
"""

import math
import operator
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal, TypeVar, cast

import msgspec

from telemetry.catalogue import CATALOGUE
from telemetry.devices import DeviceInfo
from telemetry.errors import DecodeError, TopicError
from telemetry.kinds import Channel, DeviceKind
from telemetry.topics import Topic, is_valid_id

VERSION: Final = 1
MAX_PAYLOAD_BYTES: Final = 16 * 1024


class Report(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A periodic telemetry report (channel ``telemetry``)."""

    v: int
    device: str
    kind: DeviceKind
    ts: int
    """Device time, ms since the epoch (UTC)."""
    seq: int
    """Per-device counter, +1 per report since boot."""
    metrics: dict[str, float | bool]


class EventType(StrEnum):
    """Things a device reports the moment they happen."""

    DOOR_OPENED = "door_opened"
    DOOR_CLOSED = "door_closed"
    MAINS_LOST = "mains_lost"
    MAINS_RESTORED = "mains_restored"
    BATTERY_EMPTY = "battery_empty"
    SIGNAL_LOST = "signal_lost"
    SIGNAL_RESTORED = "signal_restored"
    WATER_DETECTED = "water_detected"


class Event(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A sporadic device event (channel ``event``)."""

    v: int
    device: str
    kind: DeviceKind
    ts: int
    seq: int
    event: EventType
    detail: str | None = None


class Status(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Retained device status (channel ``status``); ``offline`` is also the Last Will.

    ``ts`` is absent in a Last Will (it is fixed at connect time, before the death it
    announces); ``info`` is sent with ``online`` so the platform learns where a device is.
    """

    v: int
    device: str
    kind: DeviceKind
    state: Literal["online", "offline"]
    ts: int | None = None
    reason: str | None = None
    info: DeviceInfo | None = None


Message = Report | Event | Status


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """What a decoder accepts besides the schema."""

    max_bytes: int = MAX_PAYLOAD_BYTES
    max_future_s: float = 300.0
    """Device clocks may run ahead a little; beyond this a timestamp is rejected."""
    max_past_s: float = 7 * 86400.0
    """Reports older than this are rejected (devices buffer at most a few days offline)."""


DEFAULT_LIMITS: Final = DecodeLimits()

_encoder = msgspec.json.Encoder()
_decoders: dict[type[Message], msgspec.json.Decoder[Message]] = {
    cls: msgspec.json.Decoder(cls) for cls in (Report, Event, Status)
}
_MSGSPEC_PATH = re.compile(r" - at `(\$[^`]*)`$")
_M = TypeVar("_M", Report, Event, Status)

_CACHE_LIMIT: Final = 100_000
"""Entries per hot-path cache below; beyond it new keys are checked but not remembered."""
_topics: dict[str, Topic] = {}
"""Parsed device topics (a fleet reuses the same few thousand; ``Topic`` is immutable)."""


@dataclass(frozen=True, slots=True)
class _MetricsCheck:
    """Everything a report with these metric names (in this order) must satisfy, as tuples.

    ``types`` is ``float`` or ``bool`` per metric and ``low``/``high`` its valid range (0..1
    for booleans, which always pass): a report passes when its value types equal ``types``
    and every value is in range — two C-level comparisons instead of a Python loop per
    metric. Anything else (NaN, infinities, wrong types) fails and takes the precise path.
    """

    types: tuple[type, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    def passes(self, values: tuple[float | bool, ...]) -> bool:
        return (
            tuple(map(type, values)) == self.types
            and all(map(operator.le, self.low, values))
            and all(map(operator.le, values, self.high))
        )


_metric_checks: dict[tuple[DeviceKind, tuple[str, ...]], _MetricsCheck | None] = {}


def _metrics_check(kind: DeviceKind, names: tuple[str, ...]) -> _MetricsCheck | None:
    """The cached check of a metric-name tuple; None if a name is unknown (not cached)."""
    key = (kind, names)
    found = _metric_checks.get(key)
    if found is not None:
        return found
    known = CATALOGUE[kind]
    if not all(name in known for name in names):
        return None
    specs = [known[name] for name in names]
    check = _MetricsCheck(
        types=tuple(bool if m.dtype == "bool" else float for m in specs),
        low=tuple(0.0 if m.dtype == "bool" else m.valid_min for m in specs),
        high=tuple(1.0 if m.dtype == "bool" else m.valid_max for m in specs),
    )
    if len(_metric_checks) < _CACHE_LIMIT:
        _metric_checks[key] = check
    return check


def encode(message: Message | DeviceInfo) -> bytes:
    """Serialise a message to its wire form (compact JSON)."""
    return _encoder.encode(message)


def _decode_struct(
    payload: bytes, cls: type[_M], limits: DecodeLimits, topic: Topic | str = ""
) -> _M:
    if len(payload) > limits.max_bytes:
        raise DecodeError(
            "$", "oversize", f"payload is {len(payload)} bytes, the limit is {limits.max_bytes}"
        )
    try:
        message = cast(_M, _decoders[cls].decode(payload))
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _MSGSPEC_PATH.search(text)
        field = match.group(1) if match else "$"
        detail = text[: match.start()] if match else text
        raise DecodeError(field, "schema", detail) from None
    except msgspec.DecodeError as exc:
        raise DecodeError("$", "not_json", f"not valid JSON ({exc})") from None
    if message.v != VERSION:
        raise DecodeError("$.v", "version", f"unsupported payload version {message.v!r}")
    # A parsed topic's device id is valid already: equal ids need no second regex match.
    same = isinstance(topic, Topic) and topic.device_id == message.device
    if not same and not is_valid_id(message.device):
        raise DecodeError(
            "$.device", "bad_id", f"device id {message.device!r} has characters outside a-z 0-9 _ -"
        )
    return message


def _check_topic(topic: Topic | str, message: Message, channel: Channel) -> Topic:
    try:
        parsed = topic if isinstance(topic, Topic) else Topic.parse(topic)
    except TopicError as exc:
        raise DecodeError("topic", "bad_topic", str(exc)) from None
    if parsed.channel is not channel:
        raise DecodeError("topic", "bad_topic", f"expected a {channel} topic, got {parsed}")
    if parsed.device_id != message.device:
        raise DecodeError(
            "$.device",
            "topic_mismatch",
            f"body says device {message.device!r}, topic says {parsed.device_id!r}",
        )
    if parsed.kind is not message.kind:
        raise DecodeError(
            "$.kind", "topic_mismatch", f"body says kind {message.kind}, topic says {parsed.kind}"
        )
    return parsed


def _check_time(ts: int, now_ms: int, limits: DecodeLimits) -> None:
    if ts > now_ms + limits.max_future_s * 1000:
        raise DecodeError(
            "$.ts", "future", f"timestamp {ts} is {(ts - now_ms) / 1000:.0f} s in the future"
        )
    if ts < now_ms - limits.max_past_s * 1000:
        raise DecodeError(
            "$.ts", "too_old", f"timestamp {ts} is {(now_ms - ts) / 86400000:.1f} days old"
        )


_INT64_MAX = 2**63 - 1  # InfluxDB's integer fields are signed 64-bit


def _check_seq(seq: int) -> None:
    if seq < 0:
        raise DecodeError("$.seq", "schema", f"sequence number {seq} is negative")
    if seq > _INT64_MAX:
        raise DecodeError(
            "$.seq", "out_of_range", f"sequence number {seq} does not fit a 64-bit integer"
        )


def decode_report(
    topic: Topic | str, payload: bytes, *, now_ms: int, limits: DecodeLimits = DEFAULT_LIMITS
) -> Report:
    """Decode and validate a telemetry report, or raise ``DecodeError``.

    >>> r = decode_report("cw/v1/phuong_hoan_kiem/cabinet/cab-000001/telemetry",
    ...     b'{"v":1,"device":"cab-000001","kind":"cabinet","ts":1000,"seq":0,'
    ...     b'"metrics":{"temp_inside":31.5,"door_open":false}}', now_ms=1000)
    >>> r.metrics["temp_inside"]
    31.5
    """
    report = _decode_struct(payload, Report, limits, topic)
    _check_topic(topic, report, Channel.TELEMETRY)
    _check_time(report.ts, now_ms, limits)
    _check_seq(report.seq)
    if not report.metrics:
        raise DecodeError("$.metrics", "empty", "a report must carry at least one metric")
    check = _metrics_check(report.kind, tuple(report.metrics))
    if check is not None and check.passes(tuple(report.metrics.values())):
        return report
    # The precise path: which metric is wrong, and why.
    known = CATALOGUE[report.kind]
    for name, value in report.metrics.items():
        field = f"$.metrics.{name}"
        spec = known.get(name)
        if spec is None:
            raise DecodeError(field, "unknown_metric", f"{report.kind} has no metric {name!r}")
        if isinstance(value, bool):
            if spec.dtype != "bool":
                raise DecodeError(
                    field, "wrong_type", f"expected a number in {spec.unit}, got {value}"
                )
            continue
        if spec.dtype == "bool":
            raise DecodeError(field, "wrong_type", f"expected true or false, got {value!r}")
        if not math.isfinite(value):
            raise DecodeError(field, "not_finite", f"value {value} is not a finite number")
        if not spec.valid_min <= value <= spec.valid_max:
            raise DecodeError(
                field,
                "out_of_range",
                f"{value} {spec.unit} is outside the physical range "
                f"[{spec.valid_min:g}, {spec.valid_max:g}]",
            )
    return report


def decode_event(
    topic: Topic | str, payload: bytes, *, now_ms: int, limits: DecodeLimits = DEFAULT_LIMITS
) -> Event:
    """Decode and validate a device event, or raise ``DecodeError``."""
    event = _decode_struct(payload, Event, limits, topic)
    _check_topic(topic, event, Channel.EVENT)
    _check_time(event.ts, now_ms, limits)
    _check_seq(event.seq)
    return event


def decode_status(
    topic: Topic | str, payload: bytes, *, now_ms: int, limits: DecodeLimits = DEFAULT_LIMITS
) -> Status:
    """Decode and validate a status message, or raise ``DecodeError``."""
    status = _decode_struct(payload, Status, limits, topic)
    _check_topic(topic, status, Channel.STATUS)
    if status.ts is not None:
        _check_time(status.ts, now_ms, limits)
    if status.info is not None:
        info = status.info
        if info.id != status.device or info.kind is not status.kind:
            raise DecodeError("$.info", "topic_mismatch", "info describes another device")
        if not is_valid_id(info.ward):
            raise DecodeError("$.info.ward", "bad_id", f"ward {info.ward!r} is not a valid id")
        # The route becomes a tag of every point of the segment: bounded like an id.
        if info.route is not None and not is_valid_id(info.route):
            raise DecodeError("$.info.route", "bad_id", f"route {info.route!r} is not a valid id")
        if info.position is not None and not 0 <= info.position <= 100_000:
            raise DecodeError("$.info.position", "out_of_range", "position outside 0..100000")
        if not (-90 <= info.lat <= 90 and -180 <= info.lon <= 180):
            raise DecodeError("$.info", "out_of_range", "lat/lon outside the globe")
    return status


def decode_message(
    topic: str, payload: bytes, *, now_ms: int, limits: DecodeLimits = DEFAULT_LIMITS
) -> tuple[Topic, Message]:
    """Decode any device message, dispatching on the topic's channel."""
    parsed = _topics.get(topic)
    if parsed is None:
        try:
            parsed = Topic.parse(topic)
        except TopicError as exc:
            raise DecodeError("topic", "bad_topic", str(exc)) from None
        if len(_topics) < _CACHE_LIMIT:
            _topics[topic] = parsed
    message: Message
    if parsed.channel is Channel.TELEMETRY:
        message = decode_report(parsed, payload, now_ms=now_ms, limits=limits)
    elif parsed.channel is Channel.EVENT:
        message = decode_event(parsed, payload, now_ms=now_ms, limits=limits)
    else:
        message = decode_status(parsed, payload, now_ms=now_ms, limits=limits)
    return parsed, message
