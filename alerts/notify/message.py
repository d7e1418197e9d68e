"""The one place where what a person reads about an alert change is written.

Telegram, Zalo and e-mail send a :class:`Message` (a subject and a short plain text that
reads on a phone); :func:`render` writes it for one change and :func:`render_group` for
a group of changes that go out together (routing's ``group_by``). Localising the texts
(Vietnamese first) replaces these two functions' wording and nothing else.

Ward codenames (``phuong_hoang_mai``) stay in topics and tags; a person reads the ward's
Vietnamese name. The catalogue lives outside the alert layer, so the caller hands in a
``ward_name`` look-up (the composition root builds it from the ward table); the default
shows the codename.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.model import SEVERITY_RANK, AlertChange, ChangeKind

WardName = Callable[[str], str]
"""Codename → the name a person reads (``phuong_hoang_mai`` → ``Phường Hoàng Mai``)."""

MAX_GROUP_LINES = 12
"""A group message lists this many changes, then says how many more there are."""


def codename(ward: str) -> str:
    return ward


def hanoi_tz() -> tzinfo:
    """``Asia/Ho_Chi_Minh``; UTC+7 where the system has no time-zone data (Vietnam has
    kept UTC+7 without daylight saving since 1975)."""
    try:
        return ZoneInfo("Asia/Ho_Chi_Minh")
    except ZoneInfoNotFoundError:  # pragma: no cover - a slim image without tzdata
        return timezone(timedelta(hours=7), "ICT")


HANOI = hanoi_tz()


@dataclass(frozen=True, slots=True)
class Message:
    """What a notifier sends: ``subject`` (e-mail subject; the first, bold line on a
    chat) and ``text`` (plain text, a few short lines)."""

    subject: str
    text: str


_KIND_WORDS: dict[ChangeKind, str] = {
    ChangeKind.RAISED: "NEW",
    ChangeKind.SEVERITY_RAISED: "WORSE",
    ChangeKind.CLEARED: "CLEARED",
    ChangeKind.RESOLVED: "RESOLVED",
    ChangeKind.ACKNOWLEDGED: "ACKNOWLEDGED",
    ChangeKind.ASSIGNED: "ASSIGNED",
    ChangeKind.ESCALATED: "ESCALATED",
    ChangeKind.REMINDER: "STILL OPEN",
    ChangeKind.FLAPPING_STOPPED: "STEADY AGAIN",
    ChangeKind.UNSILENCED: "UNSILENCED",
    ChangeKind.UNGROUPED: "ON ITS OWN AGAIN",
}

_ENDED = frozenset({ChangeKind.CLEARED, ChangeKind.RESOLVED})


def _what(change: AlertChange) -> str:
    alert = change.alert
    if alert is None:
        return f"alert #{change.alert_id}"
    return alert.type.value.replace("_", " ")


def _where(change: AlertChange, ward_name: WardName) -> str:
    alert = change.alert
    place = ward_name(change.ward)
    if alert is not None and alert.device:
        return f"{place} · {alert.device}"
    return place


def local_time(at_ms: int) -> str:
    """``14:05`` in Hanoi time."""
    return datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(HANOI).strftime("%H:%M")


def render(change: AlertChange, ward_name: WardName = codename) -> Message:
    """One change for a phone: a subject such as ``NEW flooding (critical) — Phường Hoàn
    Kiếm`` and a few lines: where, what the detector saw, who acted, when."""
    alert = change.alert
    kind = _KIND_WORDS.get(change.kind, change.kind.value.upper())
    severity = f" ({alert.severity.value})" if alert is not None else ""
    subject = f"{kind} {_what(change)}{severity} — {ward_name(change.ward)}"
    lines = [_where(change, ward_name)]
    if alert is not None and alert.explanation and change.kind not in _ENDED:
        lines.append(alert.explanation)
    if change.detail and (alert is None or alert.explanation not in change.detail):
        lines.append(change.detail)  # a raise's detail repeats the explanation
    if change.actor:
        lines.append(f"by {change.actor}")
    lines.append(f"{local_time(change.at_ms)} · alert #{change.alert_id}")
    return Message(subject, "\n".join(lines))


def _line(change: AlertChange, ward_name: WardName) -> str:
    alert = change.alert
    kind = _KIND_WORDS.get(change.kind, change.kind.value.upper())
    severity = f" {alert.severity.value}" if alert is not None else ""
    device = f" {alert.device}" if alert is not None and alert.device else ""
    return f"{kind}{severity} {_what(change)}{device} ({ward_name(change.ward)})"


def render_group(changes: Sequence[AlertChange], ward_name: WardName = codename) -> Message:
    """Changes that go out together as one message: one of them reads as :func:`render`;
    several give a count in the subject and one line each (the most severe first, at most
    :data:`MAX_GROUP_LINES`)."""
    if not changes:
        raise ValueError("a group message needs at least one change")
    if len(changes) == 1:
        return render(changes[0], ward_name)
    wards = sorted({c.ward for c in changes})
    place = ward_name(wards[0]) if len(wards) == 1 else f"{len(wards)} wards"
    opened = sum(1 for c in changes if c.kind is ChangeKind.RAISED)
    ended = sum(1 for c in changes if c.kind in _ENDED)
    counts = [f"{opened} new"] if opened else []
    counts += [f"{ended} cleared"] if ended else []
    other = len(changes) - opened - ended
    counts += [f"{other} updates"] if other else []
    subject = f"{len(changes)} alert changes — {place} ({', '.join(counts)})"

    def urgency(change: AlertChange) -> tuple[int, int]:
        rank = SEVERITY_RANK[change.alert.severity] if change.alert is not None else -1
        return (-rank, change.id)

    ordered = sorted(changes, key=urgency)
    lines = [_line(c, ward_name) for c in ordered[:MAX_GROUP_LINES]]
    if len(ordered) > MAX_GROUP_LINES:
        lines.append(f"… and {len(ordered) - MAX_GROUP_LINES} more")
    first, last = min(c.at_ms for c in changes), max(c.at_ms for c in changes)
    span = (
        local_time(first)
        if local_time(first) == local_time(last)
        else (f"{local_time(first)}–{local_time(last)}")
    )
    lines.append(span)
    return Message(subject, "\n".join(lines))
