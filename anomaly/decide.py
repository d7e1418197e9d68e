"""Scoring is separate from deciding: the kernel turns component scores into on/off
transitions with hysteresis; this module gives each transition its severity and words."""

from __future__ import annotations

import math

from anomaly.events import Detection, DetectionKind, Reference, Severity
from anomaly.explain import explain
from anomaly.layout import M_CRIT_HIGH, M_CRIT_LOW, M_WARN_HIGH, M_WARN_LOW
from anomaly.registry import GENERIC_METRIC, SeriesRegistry
from telemetry.catalogue import METRICS_BY_ID

COMPONENT_KINDS: tuple[DetectionKind, ...] = (
    DetectionKind.LIMIT,
    DetectionKind.BASELINE,
    DetectionKind.TIME_OF_DAY,
    DetectionKind.LEVEL_SHIFT,
    DetectionKind.FLATLINE,
    DetectionKind.DROPOUT,
)
"""The detection kind of each series-level component, in kernel order."""

_HOUR_MS = 3_600_000
# Kinds are compared by identity, not looked up in sets or dicts: an enum member's hash
# is a Python-level call, and an offline pass over a long history makes thousands of
# events.
_BASELINE, _TIME_OF_DAY, _LEVEL_SHIFT = (
    DetectionKind.BASELINE,
    DetectionKind.TIME_OF_DAY,
    DetectionKind.LEVEL_SHIFT,
)


def severity(kind: DetectionKind, score: float, z: float) -> Severity:
    """Limits: warning or critical by the level crossed; dropouts: major; statistics:
    minor, major when extreme."""
    if kind is DetectionKind.LIMIT:
        return Severity.CRITICAL if round(abs(z)) >= 2 else Severity.WARNING
    if kind is DetectionKind.DROPOUT:
        return Severity.MAJOR
    return Severity.MAJOR if score >= 0.97 else Severity.MINOR


def series_event(
    registry: SeriesRegistry,
    kind: DetectionKind,
    slot: int,
    ts_ms: int,
    value: float,
    z: float,
    ref: float,
    limits: tuple[float, ...],
    since_ms: float,
    active: bool,
    start_ms: float,
    peak: float,
    utc_offset_h: float,
) -> Detection:
    """The Detection of one transition of a series-level component (the arguments are
    positional where it is called per event: keywords cost a few hundred ns each call)."""
    device, metric_id = registry.key(slot)
    hour = int(((ts_ms + round(utc_offset_h * _HOUR_MS)) // _HOUR_MS) % 24)
    text = explain(
        kind,
        metric_id,
        value,
        z,
        ref,
        hour=hour,
        limits=(
            limits[M_WARN_LOW],
            limits[M_WARN_HIGH],
            limits[M_CRIT_LOW],
            limits[M_CRIT_HIGH],
        ),
        since_ms=since_ms,
    )
    if not active:
        text = f"ended: {text}" if kind is not DetectionKind.DROPOUT else f"resumed: {text}"
    name = "" if metric_id == GENERIC_METRIC else METRICS_BY_ID[metric_id].name
    # The level the reading is judged against, for the statistical kinds (a person reads
    # "3 °C above its usual", never the z-score).
    usual = (
        (kind is _BASELINE or kind is _TIME_OF_DAY or kind is _LEVEL_SHIFT)
        and math.isfinite(ref)
        and math.isfinite(value)
    )
    return Detection(
        kind=kind,
        severity=severity(kind, peak, z),
        active=active,
        ward=registry.ward_of_slot(slot),
        device=device,
        metric=name,
        start_ms=int(start_ms),
        ts_ms=int(ts_ms),
        score=min(1.0, max(0.0, peak)) if not math.isnan(peak) else 0.0,
        value=value,
        value_metric=name,
        reference=float(ref) if usual else None,
        reference_kind=Reference.BASELINE if usual else None,
        explanation=text,
    )
