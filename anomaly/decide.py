"""Scoring is separate from deciding: the kernel turns component scores into on/off
transitions with hysteresis; this module gives each transition its severity and words."""

from __future__ import annotations

import math
from typing import NamedTuple

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

# Kinds are compared by identity, not looked up in sets or dicts: an enum member's hash
# is a Python-level call, and an offline pass over a long history makes thousands of
# events.
_BASELINE, _TIME_OF_DAY, _LEVEL_SHIFT = (
    DetectionKind.BASELINE,
    DetectionKind.TIME_OF_DAY,
    DetectionKind.LEVEL_SHIFT,
)
_LIMIT, _DROPOUT = DetectionKind.LIMIT, DetectionKind.DROPOUT
_CRITICAL, _WARNING, _MAJOR, _MINOR = (
    Severity.CRITICAL,
    Severity.WARNING,
    Severity.MAJOR,
    Severity.MINOR,
)
_BASELINE_REFERENCE = Reference.BASELINE


def severity(kind: DetectionKind, score: float, z: float) -> Severity:
    """Limits: warning or critical by the level crossed; dropouts: major; statistics:
    minor, major when extreme."""
    if kind is _LIMIT:
        return _CRITICAL if round(abs(z)) >= 2 else _WARNING
    if kind is _DROPOUT:
        return _MAJOR
    return _MAJOR if score >= 0.97 else _MINOR


class SlotFacts(NamedTuple):
    """What an event of a series says of it, looked up once per batch (``slot_facts``)."""

    device: str
    metric_id: int
    name: str  # the catalogue metric's name; "" for a generic series
    ward: str
    limits: tuple[float, float, float, float]  # warn low, warn high, crit low, crit high


def slot_facts(registry: SeriesRegistry, slot: int, metric_row: tuple[float, ...]) -> SlotFacts:
    """The facts of ``slot``; ``metric_row`` is its metric's row of the kernel's table."""
    device, metric_id = registry.key(slot)
    name = "" if metric_id == GENERIC_METRIC else METRICS_BY_ID[metric_id].name
    limits = (
        metric_row[M_WARN_LOW],
        metric_row[M_WARN_HIGH],
        metric_row[M_CRIT_LOW],
        metric_row[M_CRIT_HIGH],
    )
    return SlotFacts(device, metric_id, name, registry.ward_of_slot(slot), limits)


def series_event(
    kind: DetectionKind,
    facts: SlotFacts,
    ts_ms: int,
    hour: int,
    value: float,
    z: float,
    ref: float,
    since_ms: float,
    active: bool,
    start_ms: float,
    peak: float,
) -> Detection:
    """The Detection of one transition of a series-level component at local ``hour``
    (the arguments are positional where it is called per event: keywords cost a few
    hundred ns each call; an offline pass over a long history makes thousands)."""
    metric_id = facts.metric_id
    text = explain(
        kind, metric_id, value, z, ref, hour=hour, limits=facts.limits, since_ms=since_ms
    )
    if not active:
        text = f"ended: {text}" if kind is not _DROPOUT else f"resumed: {text}"
    # The level the reading is judged against, for the statistical kinds (a person reads
    # "3 °C above its usual", never the z-score).
    usual = (
        (kind is _BASELINE or kind is _TIME_OF_DAY or kind is _LEVEL_SHIFT)
        and math.isfinite(ref)
        and math.isfinite(value)
    )
    name = facts.name
    return Detection(
        kind=kind,
        severity=severity(kind, peak, z),
        active=active,
        ward=facts.ward,
        device=facts.device,
        metric=name,
        start_ms=int(start_ms),
        ts_ms=int(ts_ms),
        score=min(1.0, max(0.0, peak)) if not math.isnan(peak) else 0.0,
        value=value,
        value_metric=name,
        reference=float(ref) if usual else None,
        reference_kind=_BASELINE_REFERENCE if usual else None,
        explanation=text,
    )
