"""Plain-language explanations a field crew can act on."""

from __future__ import annotations

import functools
import math

from anomaly.events import Detection, DetectionKind, Severity
from anomaly.registry import GENERIC_METRIC
from telemetry.catalogue import METRICS_BY_ID
from telemetry.kinds import DeviceKind

_LIMIT_NAMES = ("", "warning", "critical")
_LIMIT, _BASELINE, _TIME_OF_DAY = (
    DetectionKind.LIMIT,
    DetectionKind.BASELINE,
    DetectionKind.TIME_OF_DAY,
)
_LEVEL_SHIFT, _FLATLINE, _DROPOUT = (
    DetectionKind.LEVEL_SHIFT,
    DetectionKind.FLATLINE,
    DetectionKind.DROPOUT,
)


@functools.cache  # a few dozen metrics; an event's words are built from it
def metric_label(metric_id: int) -> tuple[str, str, str]:
    """(label, unit, what the device is) for a metric id; generic series get 'value'."""
    if metric_id == GENERIC_METRIC or metric_id not in METRICS_BY_ID:
        return "value", "", "series"
    m = METRICS_BY_ID[metric_id]
    label = m.name.replace("_", " ").replace("temp ", "temperature ")
    if label == "temp":
        label = "duct temperature"
    owner = "cabinet" if m.kind is DeviceKind.CABINET else "cable segment"
    return label, "" if m.unit == "bool" else m.unit, owner


def _fmt(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    text = f"{value:.1f}" if -1e5 < value < 1e5 else f"{value:.4g}"
    return f"{text} {unit}" if unit else text


def _duration(ms: float) -> str:
    minutes = ms / 60_000
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def explain(
    kind: DetectionKind,
    metric_id: int,
    value: float,
    z: float,
    ref: float,
    *,
    hour: int = 0,
    limits: tuple[float, float, float, float] | None = None,
    since_ms: float = 0.0,
) -> str:
    """One sentence for a series-level detection.

    Examples
    --------
    >>> explain(DetectionKind.TIME_OF_DAY, 1, 58.31, 4.12, 31.2, hour=14)
    "temperature inside 58.3 °C, 4.1σ above this cabinet's usual for 14:00 (31.2 °C)"
    """
    label, unit, owner = metric_label(metric_id)
    side = "above" if z >= 0 else "below"
    # Kinds compared with module constants: an enum member looked up on its class costs
    # more than the comparison, and an offline pass over a long history makes thousands.
    if kind is _LIMIT:
        now = f"{label} {_fmt(value, unit)}"
        level = round(abs(z))
        if limits is None or level == 0:
            return f"{now}, back inside its alarm limits"
        warn_low, warn_high, crit_low, crit_high = limits
        lo, hi = (crit_low, crit_high) if level == 2 else (warn_low, warn_high)
        if not math.isnan(hi) and value >= hi:
            return f"{now}, at or above the {_LIMIT_NAMES[level]} limit {_fmt(hi, unit)}"
        return f"{now}, below the {_LIMIT_NAMES[level]} limit {_fmt(lo, unit)}"
    if kind is _BASELINE:
        now = f"{label} {_fmt(value, unit)}"
        return f"{now}, {abs(z):.1f}σ {side} this {owner}'s recent baseline {_fmt(ref, unit)}"
    if kind is _TIME_OF_DAY:
        usual = f"this {owner}'s usual for {hour:02d}:00 ({_fmt(ref, unit)})"
        return f"{label} {_fmt(value, unit)}, {abs(z):.1f}σ {side} {usual}"
    if kind is _LEVEL_SHIFT:
        way = "up" if z >= 0 else "down"
        return (
            f"{label} stepped {way}: {_fmt(value, unit)} against a steady {_fmt(ref, unit)} before"
        )
    if kind is _FLATLINE:
        return (
            f"{label} stuck at {_fmt(value, unit)} for {z:.0f} readings "
            f"({_duration(since_ms)}); the sensor may be frozen"
        )
    if kind is _DROPOUT:
        return (
            f"no {label} reading for {_duration(z * ref)} "
            f"(expected every {_duration(ref)}); device, power or link down?"
        )
    return f"{label} {_fmt(value, unit)}: {kind.value}"


OFFLINE_REASONS = {
    "last_will": "its connection to the broker dropped",
    "lwt": "its connection to the broker dropped",
    "status": "it reported going offline",
    "timeout": "no report for three reporting periods",
}
"""Why a device is judged offline (ingest's liveness reasons), in words."""


def liveness_detection(
    kind: DeviceKind, device: str, ward: str, *, online: bool, reason: str, now_ms: int
) -> Detection:
    """The OFFLINE detection of a device going offline (active) or back online (its end)."""
    what = f"{kind.value.replace('_', ' ')} {device}"
    return Detection(
        kind=DetectionKind.OFFLINE,
        severity=Severity.MAJOR,
        active=not online,
        ward=ward,
        device=device,
        start_ms=now_ms,
        ts_ms=now_ms,
        score=0.0 if online else 1.0,
        explanation=(
            f"{what} is back online"
            if online
            else f"{what} went offline: {OFFLINE_REASONS.get(reason, reason.replace('_', ' '))}"
        ),
    )
