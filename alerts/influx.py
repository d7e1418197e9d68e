"""Alert transitions as InfluxDB line protocol, for Grafana annotations and tables.

Measurement ``citywatch_alert``; tags ``ward``, ``device`` (absent for area alerts),
``type``, ``severity``, ``state``, ``transition``; fields ``alert_id`` (int),
``explanation`` (string), ``score`` (float), ``acknowledged`` (bool),
``incident_root`` (bool), ``detail`` (string), and on acknowledge / clear transitions
``ack_after_s`` / ``resolve_after_s`` (float seconds since the alert was raised);
timestamp in nanoseconds (the ``/write`` default precision). The wiring posts the lines
with its InfluxDB writer; this module does no I/O.

Escaping is hand-written (a few lines) because it is the security boundary the design
names: a value must never be able to add a tag, a field or a line. Newlines, which line
protocol cannot carry at all, become spaces; backslashes in tag values become ``/``.
"""

from collections.abc import Iterable

from alerts.model import AlertChange, ChangeKind

MEASUREMENT = "citywatch_alert"
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\ ", "\r": r"\ "})


def _tag(value: str) -> str:
    # InfluxDB 1.x has no escape for a backslash in a tag value (a trailing one escapes
    # the separator after it): ids never contain one, so it becomes "/".
    return value.replace("\\", "/").translate(_TAG_ESCAPES)


def _string_field(value: str) -> str:
    flat = value.replace("\r", " ").replace("\n", " ")
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def alert_line(change: AlertChange) -> str:
    """One line for one stored transition (``change.alert`` must be set, as every change
    returned by the store's writes is)."""
    alert = change.alert
    if alert is None:
        raise ValueError(f"change {change.id} carries no alert snapshot")
    tags = [("ward", alert.ward)]
    if alert.device:
        tags.append(("device", alert.device))
    tags += [
        ("type", alert.type.value),
        ("severity", alert.severity.value),
        ("state", alert.state.value),
        ("transition", change.kind.value),
    ]
    tag_part = ",".join(f"{k}={_tag(v)}" for k, v in tags if v)
    fields = [
        f"alert_id={alert.id}i",
        f"explanation={_string_field(alert.explanation)}",
        f"score={float(alert.last_score)!r}",
        f"acknowledged={'true' if alert.acknowledged else 'false'}",
        f"incident_root={'true' if alert.incident_root else 'false'}",
        f"detail={_string_field(change.detail)}",
    ]
    # Time to acknowledge / resolve, on the transition that ends the wait (Grafana means).
    started = alert.raised_at if alert.raised_at is not None else alert.opened_at
    if change.kind is ChangeKind.ACKNOWLEDGED:
        fields.append(f"ack_after_s={(change.at_ms - started) / 1000.0!r}")
    elif change.kind in (ChangeKind.CLEARED, ChangeKind.RESOLVED):
        fields.append(f"resolve_after_s={(change.at_ms - started) / 1000.0!r}")
    return f"{MEASUREMENT},{tag_part} {','.join(fields)} {change.at_ms * 1_000_000}"


def alert_lines(changes: Iterable[AlertChange]) -> str:
    """The body of one ``/write`` request (newline-separated lines)."""
    return "\n".join(alert_line(c) for c in changes)
