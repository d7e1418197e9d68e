"""The one place where what a person reads about an alert change is written.

Telegram, Zalo and e-mail send a :class:`Message` (a subject and a short plain text that
reads on a phone); :func:`render` writes it for one change and :func:`render_group` for
a group of changes that go out together (routing's ``group_by``).

Vietnamese first (:mod:`alerts.notify.i18n`): every text is marked for gettext and
translated in the ``vi`` catalogue; numbers and times are Babel's, in Hanoi time. The
main line is written from the alert's fields (type, metric, value with its unit and the
catalogue's alarm limits), so it reads in the receiver's language and never says "σ";
the detector's own sentence (English, statistical) is added to English messages only,
for the NOC. A change's free text is added when a person wrote it (a note, a comment).

Ward codenames (``phuong_hoang_mai``) stay in topics and tags; a person reads the ward's
Vietnamese name. The catalogue lives outside the alert layer, so the caller hands in a
``ward_name`` look-up (the composition root builds it from the ward table); the default
shows the codename.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from alerts.model import (
    SEVERITY_RANK,
    Alert,
    AlertChange,
    AlertSeverity,
    AlertType,
    ChangeKind,
    ReferenceKind,
)
from alerts.notify.i18n import (
    DEFAULT_LANG,
    HANOI,
    N_,
    Lang,
    clock,
    duration,
    number,
    translations,
)
from telemetry.catalogue import METRICS_BY_ID, Metric

__all__ = [
    "HANOI",
    "MAX_GROUP_LINES",
    "Message",
    "WardName",
    "codename",
    "describe",
    "local_time",
    "render",
    "render_group",
]

WardName = Callable[[str], str]
"""Codename → the name a person reads (``phuong_hoang_mai`` → ``Phường Hoàng Mai``)."""

MAX_GROUP_LINES = 12
"""A group message lists this many changes, then says how many more there are."""


def codename(ward: str) -> str:
    return ward


@dataclass(frozen=True, slots=True)
class Message:
    """What a notifier sends: ``subject`` (e-mail subject; the first, bold line on a
    chat) and ``text`` (plain text, a few short lines)."""

    subject: str
    text: str


_KIND_WORDS: Mapping[ChangeKind, str] = {
    ChangeKind.RAISED: N_("NEW"),
    ChangeKind.SEVERITY_RAISED: N_("WORSE"),
    ChangeKind.CLEARED: N_("CLEARED"),
    ChangeKind.RESOLVED: N_("RESOLVED"),
    ChangeKind.ACKNOWLEDGED: N_("ACKNOWLEDGED"),
    ChangeKind.ASSIGNED: N_("ASSIGNED"),
    ChangeKind.ESCALATED: N_("ESCALATED"),
    ChangeKind.REMINDER: N_("STILL OPEN"),
    ChangeKind.FLAPPING_STOPPED: N_("STEADY AGAIN"),
    ChangeKind.UNSILENCED: N_("UNSILENCED"),
    ChangeKind.UNGROUPED: N_("ON ITS OWN AGAIN"),
}

TYPE_WORDS: Mapping[AlertType, str] = {
    AlertType.LIMIT: N_("Reading out of limits"),
    AlertType.BASELINE: N_("Unusual reading"),
    AlertType.TIME_OF_DAY: N_("Unusual for this hour"),
    AlertType.LEVEL_SHIFT: N_("Sudden change"),
    AlertType.FLATLINE: N_("Sensor stuck"),
    AlertType.DROPOUT: N_("Sensor silent"),
    AlertType.OVERHEATING: N_("Cabinet overheating"),
    AlertType.POWER_LOSS: N_("Mains power lost"),
    AlertType.FLOODING: N_("Water inside"),
    AlertType.INTRUSION: N_("Door opened"),
    AlertType.CABLE_CUT: N_("Cable cut"),
    AlertType.FIBRE_DEGRADATION: N_("Fibre degrading"),
    AlertType.AREA_OUTAGE: N_("Area power outage"),
    AlertType.OFFLINE: N_("Device offline"),
}
"""What an alert is, in a few words (the crew page's card title says the same)."""

SEVERITY_WORDS: Mapping[AlertSeverity, str] = {
    AlertSeverity.CRITICAL: N_("critical"),
    AlertSeverity.MAJOR: N_("major"),
    AlertSeverity.MINOR: N_("minor"),
    AlertSeverity.WARNING: N_("warning"),
}

_RULE_LINES: Mapping[AlertType, str] = {
    AlertType.OVERHEATING: N_("The cabinet is too hot: check the fans and vents."),
    AlertType.POWER_LOSS: N_("Mains lost: the cabinet runs on its battery."),
    AlertType.FLOODING: N_("Water has got in: check the cabinet or the duct."),
    AlertType.INTRUSION: N_("The cabinet door was opened outside working hours."),
    AlertType.CABLE_CUT: N_("No light through the segment: cable cut or crushed."),
    AlertType.FIBRE_DEGRADATION: N_("Optical loss creeping up: fibre or splice degrading."),
    AlertType.AREA_OUTAGE: N_("Many cabinets of the ward on battery at once: area power outage."),
    AlertType.OFFLINE: N_("The device stopped reporting: power or link down?"),
}
"""The main line of alerts with no reading of their own (device and area rules)."""

_RULE_ADVICE: Mapping[AlertType, str] = {
    AlertType.OVERHEATING: N_("Check the fans and vents."),
    AlertType.POWER_LOSS: N_("Mains lost: the cabinet runs on its battery."),
    AlertType.FLOODING: N_("Water has got in: check the cabinet or the duct."),
    AlertType.CABLE_CUT: N_("No light through the segment: cable cut or crushed."),
    AlertType.FIBRE_DEGRADATION: N_("Fibre or splice degrading."),
}
"""What a device rule's figure means, said after it: ``Nhiệt độ trong tủ: 48 °C, cao hơn
bình thường 10 °C. Kiểm tra quạt và khe thông gió.``"""

AREA_SILENCE_METRIC = "offline"
"""The metric of an area outage raised by many devices going silent (``anomaly``'s area
silence rule); without it, the area outage is the on-battery one."""

METRIC_WORDS: Mapping[str, str] = {
    "temp_inside": N_("Temperature inside the cabinet"),
    "temp_outside": N_("Temperature outside the cabinet"),
    "humidity": N_("Humidity inside the cabinet"),
    "door_open": N_("Cabinet door"),
    "mains_voltage": N_("Mains voltage"),
    "on_battery": N_("Battery use"),
    "battery_soc": N_("Battery charge"),
    "battery_voltage": N_("Battery voltage"),
    "fan_rpm": N_("Fan speed"),
    "water_level": N_("Water in the cabinet"),
    "power_draw": N_("Power draw"),
    "temp": N_("Duct temperature"),
    "moisture": N_("Duct moisture"),
    "strain": N_("Cable strain"),
    "optical_loss": N_("Optical loss"),
    "signal": N_("Light through the fibre"),
}

_BOOL_WORDS: Mapping[tuple[str, bool], str] = {
    ("door_open", True): N_("open"),
    ("door_open", False): N_("closed"),
    ("on_battery", True): N_("running on battery"),
    ("on_battery", False): N_("on mains"),
    ("signal", True): N_("light arrives"),
    ("signal", False): N_("no light"),
}

METRICS: Mapping[str, Metric] = {m.name: m for m in METRICS_BY_ID.values()}
"""The catalogue by metric name (names are unique across device kinds)."""

_ENDED = frozenset({ChangeKind.CLEARED, ChangeKind.RESOLVED})


def local_time(at_ms: int, lang: Lang = DEFAULT_LANG) -> str:
    """``14:05`` in Hanoi time."""
    return clock(at_ms, lang)


def _value(m: Metric, value: float, lang: Lang) -> str:
    _ = translations(lang).gettext
    if m.dtype == "bool":
        fallback = N_("on") if value >= 1 else N_("off")
        return _(_BOOL_WORDS.get((m.name, value >= 1), fallback))
    return f"{number(value, lang)} {m.unit}"


def _limit(m: Metric, value: float, lang: Lang) -> str:
    """``above the critical limit 55 °C`` or the like; empty when no limit is crossed."""
    _ = translations(lang).gettext
    for limit, text in (
        (m.crit_high, N_("above the critical limit {limit}")),
        (m.warn_high, N_("above the warning limit {limit}")),
    ):
        if limit is not None and value >= limit:
            return _(text).format(limit=_value(m, limit, lang)) if m.dtype != "bool" else ""
    for limit, text in (
        (m.crit_low, N_("below the critical limit {limit}")),
        (m.warn_low, N_("below the warning limit {limit}")),
    ):
        if limit is not None and value <= limit:
            return _(text).format(limit=_value(m, limit, lang)) if m.dtype != "bool" else ""
    return ""


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _rate(m: Metric, per_h: float, lang: Lang) -> str:
    """``tăng 0,5 dB mỗi ngày`` / ``falling 8 % an hour``: per day when slow."""
    _ = translations(lang).gettext
    daily = abs(per_h) < 0.1
    size = abs(per_h) * 24 if daily else abs(per_h)
    amount = f"{number(size, lang, digits=2 if size < 1 else 1)} {m.unit}"
    if per_h >= 0:
        text = N_("rising {amount} a day") if daily else N_("rising {amount} an hour")
    else:
        text = N_("falling {amount} a day") if daily else N_("falling {amount} an hour")
    return _(text).format(amount=amount)


def _against(alert: Alert, m: Metric, lang: Lang) -> str:
    """What the alert's value is judged against, in words (``cao hơn bình thường 10 °C``,
    ``vượt ngưỡng 30 mm``, ``giảm 8 % mỗi giờ``); empty when there is nothing to say."""
    _ = translations(lang).gettext
    value, ref, kind = alert.value, alert.reference, alert.reference_kind
    if value is None or ref is None or kind is None or m.dtype == "bool":
        return ""
    if not (math.isfinite(value) and math.isfinite(ref)):
        return ""
    if kind is ReferenceKind.LIMIT:
        text = N_("above the limit {limit}") if value >= ref else N_("below the limit {limit}")
        return _(text).format(limit=_value(m, ref, lang))
    if kind is ReferenceKind.TREND:
        return _rate(m, ref, lang)
    if kind is not ReferenceKind.BASELINE:
        return ""
    if alert.type is AlertType.LEVEL_SHIFT:
        return _("changed suddenly from {usual}").format(usual=_value(m, ref, lang))
    diff = value - ref
    if number(abs(diff), lang) == "0":
        return ""
    gap = _value(m, abs(diff), lang)
    if alert.type is AlertType.TIME_OF_DAY:
        text = (
            N_("{gap} above its usual for this hour")
            if diff > 0
            else N_("{gap} below its usual for this hour")
        )
    else:
        text = N_("{gap} above its usual") if diff > 0 else N_("{gap} below its usual")
    return _(text).format(gap=gap)


def _area(alert: Alert, lang: Lang) -> str:
    """An area outage: how many of the ward's devices, and which kind of outage."""
    _ = translations(lang).gettext
    silent = alert.metric == AREA_SILENCE_METRIC
    counted = alert.reference_kind is ReferenceKind.TOTAL
    if counted and _finite(alert.value) and _finite(alert.reference):
        n, total = round(alert.value or 0), round(alert.reference or 0)
        text = (
            N_("{n} of {total} devices in the ward went silent: area power or link down.")
            if silent
            else N_("{n} of {total} cabinets in the ward on battery at once: area power outage.")
        )
        return _(text).format(n=number(n, lang), total=number(total, lang))
    if silent:
        return _("Many devices of the ward went silent at once: area power or link down.")
    return _(_RULE_LINES[AlertType.AREA_OUTAGE])


def _rule(alert: Alert, lang: Lang) -> str | None:
    """A device rule's line with its figure (``Nhiệt độ trong tủ: 48 °C, cao hơn bình
    thường 10 °C. Kiểm tra quạt và khe thông gió.``); ``None`` when it has none."""
    _ = translations(lang).gettext
    m = METRICS.get(alert.value_metric)
    if m is None or m.dtype == "bool" or alert.value is None or not math.isfinite(alert.value):
        return None
    label, value = _(METRIC_WORDS.get(m.name, m.name)), _value(m, alert.value, lang)
    against = _against(alert, m, lang)
    figure = (
        _("{metric}: {value}, {against}").format(metric=label, value=value, against=against)
        if against
        else _("{metric}: {value}").format(metric=label, value=value)
    )
    advice = _RULE_ADVICE.get(alert.type)
    return f"{figure}. {_(advice)}" if advice else figure


def describe(alert: Alert, lang: Lang = DEFAULT_LANG) -> str:
    """What is wrong, from the alert's fields, in words a lineman reads at a glance:
    ``Nhiệt độ trong tủ: 48 °C, vượt ngưỡng cảnh báo 45 °C``, and for device rules the
    reading they judged with what it is judged against (``cao hơn bình thường 10 °C``).
    No statistics (the detector's sentence stays in the alert's ``explanation``)."""
    _ = translations(lang).gettext
    if alert.type is AlertType.AREA_OUTAGE:
        return _area(alert, lang)
    if not alert.metric and (line := _rule(alert, lang)) is not None:
        return line
    m = METRICS.get(alert.metric)
    if m is None or alert.value is None or not math.isfinite(alert.value):
        if alert.type in _RULE_LINES:
            return _(_RULE_LINES[alert.type])
        if m is not None and alert.type is AlertType.DROPOUT:
            return _("No {metric} reading: device, power or link down?").format(
                metric=_(METRIC_WORDS[m.name]).lower()
            )
        return _(TYPE_WORDS.get(alert.type, alert.type.value))
    label, value = _(METRIC_WORDS.get(m.name, m.name)), _value(m, alert.value, lang)
    if alert.type is AlertType.LIMIT:
        crossed = _limit(m, alert.value, lang)
        if crossed:
            return _("{metric}: {value}, {limit}").format(metric=label, value=value, limit=crossed)
        return _("{metric}: {value}, outside its limits").format(metric=label, value=value)
    if alert.type is AlertType.FLATLINE:
        return _("{metric} stuck at {value}: the sensor may be frozen").format(
            metric=label, value=value
        )
    if alert.type is AlertType.DROPOUT:
        return _("No {metric} reading: device, power or link down?").format(metric=label.lower())
    usual = _against(alert, m, lang)
    if usual and alert.type in (AlertType.LEVEL_SHIFT, AlertType.TIME_OF_DAY, AlertType.BASELINE):
        return _("{metric}: {value}, {against}").format(metric=label, value=value, against=usual)
    if alert.type is AlertType.LEVEL_SHIFT:
        return _("{metric}: {value}, changed suddenly").format(metric=label, value=value)
    if alert.type is AlertType.TIME_OF_DAY:
        return _("{metric}: {value}, not its usual for this hour").format(metric=label, value=value)
    if alert.type is AlertType.BASELINE:
        return _("{metric}: {value}, not its usual").format(metric=label, value=value)
    return _("{metric}: {value}").format(metric=label, value=value)


def _what(change: AlertChange, lang: Lang) -> str:
    _ = translations(lang).gettext
    alert = change.alert
    if alert is None:
        return _("alert #{id}").format(id=change.alert_id)
    return _(TYPE_WORDS.get(alert.type, alert.type.value))


def _kind(change: AlertChange, lang: Lang) -> str:
    word = _KIND_WORDS.get(change.kind)
    return translations(lang).gettext(word) if word else change.kind.value.upper()


def _severity(alert: Alert, lang: Lang) -> str:
    return translations(lang).gettext(SEVERITY_WORDS[alert.severity])


def _where(change: AlertChange, ward_name: WardName) -> str:
    alert = change.alert
    place = ward_name(change.ward)
    if alert is not None and alert.device:
        return f"{place} · {alert.device}"
    return place


def _status(change: AlertChange, lang: Lang) -> str:
    """A line for changes the system makes, in the language (their stored ``detail`` is
    English bookkeeping)."""
    _ = translations(lang).gettext
    alert = change.alert
    if alert is None:
        return ""
    since = change.at_ms - (alert.raised_at or alert.opened_at)
    if change.kind is ChangeKind.ESCALATED:
        return _("nobody has acknowledged it for {duration}").format(duration=duration(since, lang))
    if change.kind is ChangeKind.REMINDER:
        return _("open for {duration}").format(duration=duration(since, lang))
    return ""


def render(
    change: AlertChange, ward_name: WardName = codename, lang: Lang = DEFAULT_LANG
) -> Message:
    """One change for a phone: a subject such as ``MỚI: Ngập nước (khẩn cấp) — Phường
    Hoàng Mai`` and a few lines: where, what is wrong, who acted, when."""
    _ = translations(lang).gettext
    alert = change.alert
    kind, what = _kind(change, lang), _what(change, lang)
    place = ward_name(change.ward)
    if alert is not None:
        subject = _("{kind}: {what} ({severity}) — {place}").format(
            kind=kind, what=what, severity=_severity(alert, lang), place=place
        )
    else:
        subject = _("{kind}: {what} — {place}").format(kind=kind, what=what, place=place)
    lines = [_where(change, ward_name)]
    if alert is not None and change.kind not in _ENDED:
        lines.append(describe(alert, lang))
        if lang == "en" and alert.explanation:
            lines.append(f"Detector: {alert.explanation}")
    if status := _status(change, lang):
        lines.append(status)
    if change.actor:
        if change.detail:
            lines.append(change.detail)  # a person's note or comment, as written
        lines.append(_("by {actor}").format(actor=change.actor))
    lines.append(
        _("{time} · alert #{id}").format(time=local_time(change.at_ms, lang), id=change.alert_id)
    )
    return Message(subject, "\n".join(lines))


def _line(change: AlertChange, ward_name: WardName, lang: Lang) -> str:
    alert = change.alert
    kind, what = _kind(change, lang), _what(change, lang)
    severity = f" ({_severity(alert, lang)})" if alert is not None else ""
    device = f" {alert.device}" if alert is not None and alert.device else ""
    return f"{kind}: {what}{severity}{device} — {ward_name(change.ward)}"


def render_group(
    changes: Sequence[AlertChange], ward_name: WardName = codename, lang: Lang = DEFAULT_LANG
) -> Message:
    """Changes that go out together as one message: one of them reads as :func:`render`;
    several give a count in the subject and one line each (the most severe first, at most
    :data:`MAX_GROUP_LINES`)."""
    if not changes:
        raise ValueError("a group message needs at least one change")
    if len(changes) == 1:
        return render(changes[0], ward_name, lang)
    tr = translations(lang)
    _, ngettext = tr.gettext, tr.ngettext
    wards = sorted({c.ward for c in changes})
    n_wards = len(wards)
    place = (
        ward_name(wards[0])
        if n_wards == 1
        else ngettext("{n} ward", "{n} wards", n_wards).format(n=n_wards)
    )
    opened = sum(1 for c in changes if c.kind is ChangeKind.RAISED)
    ended = sum(1 for c in changes if c.kind in _ENDED)
    other = len(changes) - opened - ended
    counts = [_("{n} new").format(n=opened)] if opened else []
    counts += [_("{n} cleared").format(n=ended)] if ended else []
    counts += [ngettext("{n} update", "{n} updates", other).format(n=other)] if other else []
    subject = _("{n} alert changes — {place} ({counts})").format(
        n=len(changes), place=place, counts=", ".join(counts)
    )

    def urgency(change: AlertChange) -> tuple[int, int]:
        rank = SEVERITY_RANK[change.alert.severity] if change.alert is not None else -1
        return (-rank, change.id)

    ordered = sorted(changes, key=urgency)
    lines = [_line(c, ward_name, lang) for c in ordered[:MAX_GROUP_LINES]]
    if len(ordered) > MAX_GROUP_LINES:
        lines.append(_("… and {n} more").format(n=len(ordered) - MAX_GROUP_LINES))
    first = local_time(min(c.at_ms for c in changes), lang)
    last = local_time(max(c.at_ms for c in changes), lang)
    lines.append(first if first == last else f"{first}–{last}")
    return Message(subject, "\n".join(lines))
