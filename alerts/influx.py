"""Alert transitions as InfluxDB line protocol, for Grafana annotations and tables.

Measurement ``citywatch_alert``; tags ``ward``, ``device`` (absent for area alerts),
``type``, ``severity``, ``state``, ``transition``; fields ``alert_id`` (int),
``explanation`` (string), ``score`` (float), ``acknowledged`` (bool),
``incident_root`` (bool), ``detail`` (string), ``change_id`` (int), and on acknowledge /
clear transitions ``ack_after_s`` / ``resolve_after_s`` (float seconds since the alert was
raised); timestamp in nanoseconds (the ``/write`` default precision): the change's
millisecond plus ``change_id % 1_000_000`` nanoseconds, so two changes of one series in
one millisecond (two metrics of a device raised together) stay two points. The wiring
posts the lines with its InfluxDB writer; this module does no I/O.

A line depends only on the change and the alert snapshot it carries (the change feed
stores the alert as each change left it): writing a change again after a crash writes
the identical point, which InfluxDB keeps once.

Escaping is the security boundary the design names (a value must never add a tag, a
field or a line): it is ``telemetry.lineproto``'s, the one ingest uses too.
"""

from collections.abc import Iterable

from alerts.model import AlertChange, ChangeKind
from telemetry.lineproto import escape_tag, quote_string_field

MEASUREMENT = "citywatch_alert"


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
    tag_part = ",".join(f"{k}={escape_tag(v)}" for k, v in tags if v)
    fields = [
        f"alert_id={alert.id}i",
        f"explanation={quote_string_field(alert.explanation)}",
        f"score={float(alert.last_score)!r}",
        f"acknowledged={'true' if alert.acknowledged else 'false'}",
        f"incident_root={'true' if alert.incident_root else 'false'}",
        f"detail={quote_string_field(change.detail)}",
        f"change_id={change.id}i",
    ]
    if alert.incident is not None:  # grouped under (inhibited by) its incident's root
        fields.append(f"incident={alert.incident}i")
    # Time to acknowledge / resolve, on the transition that ends the wait (Grafana means).
    started = alert.raised_at if alert.raised_at is not None else alert.opened_at
    if change.kind is ChangeKind.ACKNOWLEDGED:
        fields.append(f"ack_after_s={(change.at_ms - started) / 1000.0!r}")
    elif change.kind in (ChangeKind.CLEARED, ChangeKind.RESOLVED):
        fields.append(f"resolve_after_s={(change.at_ms - started) / 1000.0!r}")
    time_ns = change.at_ms * 1_000_000 + change.id % 1_000_000
    return f"{MEASUREMENT},{tag_part} {','.join(fields)} {time_ns}"


def alert_lines(changes: Iterable[AlertChange]) -> str:
    """The body of one ``/write`` request (newline-separated lines)."""
    return "\n".join(alert_line(c) for c in changes)
