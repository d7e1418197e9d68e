"""What the detector tells the rest of the platform: detection events.

Scores (floats in [0, 1] per reading) are the detector's output for dashboards; a
``Detection`` is the decision taken from them: a condition on one series, one device or
one ward that starts (``active=True``), is updated, and ends (``active=False``). The alert
layer turns these into alerts with a lifecycle; it imports this module and nothing else
of ``anomaly``.
"""

from enum import StrEnum

import msgspec


class Severity(StrEnum):
    """Alarm severity, from the most to the least urgent (ITU X.733 / NOC practice)."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"


class DetectionKind(StrEnum):
    """Which rule fired. Also the alert type (one open alert per device × type)."""

    LIMIT = "limit"
    """A physical alarm limit of the catalogue crossed (with hysteresis)."""
    BASELINE = "baseline"
    """Far from this series' own adaptive baseline (robust z-score)."""
    TIME_OF_DAY = "time_of_day"
    """Far from what this series usually reads at this time of day."""
    LEVEL_SHIFT = "level_shift"
    """A sustained step change (CUSUM)."""
    FLATLINE = "flatline"
    """A sensor stuck on one value for longer than its noise allows."""
    DROPOUT = "dropout"
    """A series silent for longer than its expected reporting period allows."""
    OVERHEATING = "overheating"
    """Device rule: fans running yet the cabinet keeps heating (fan failure, blocked vents)."""
    POWER_LOSS = "power_loss"
    """Device rule: mains lost and the battery draining."""
    FLOODING = "flooding"
    """Device rule: water in the cabinet or duct."""
    INTRUSION = "intrusion"
    """Device rule: door opened outside working hours."""
    CABLE_CUT = "cable_cut"
    """Device rule: signal lost with a strain spike or optical loss jump."""
    FIBRE_DEGRADATION = "fibre_degradation"
    """Device rule: optical loss creeping up."""
    AREA_OUTAGE = "area_outage"
    """Area rule: a share of a ward's cabinets on battery within minutes."""
    OFFLINE = "offline"
    """Liveness: the device's status went offline or it fell silent."""


class Reference(StrEnum):
    """What a detection's ``reference`` figure is, beside its ``value``."""

    LIMIT = "limit"
    """The alarm limit (or the rule's threshold) the value crossed, in the value's unit."""
    BASELINE = "baseline"
    """What this series usually reads (its adaptive baseline, or this hour's usual, or
    the steady level before a step), in the value's unit."""
    TREND = "trend"
    """How fast the value changes, in its unit per hour (negative: falling)."""
    TOTAL = "total"
    """Area rules: ``value`` devices of the ward out of ``reference``."""


class Detection(msgspec.Struct, frozen=True, kw_only=True):
    """One detection event.

    ``metric`` is empty for device-level rules and ``device`` is empty for area-level ones
    (then ``ward`` names the area). ``start_ms`` is when the condition began, ``ts_ms`` the
    reading time that produced this event; both are device time.
    """

    kind: DetectionKind
    severity: Severity
    active: bool
    """True when the condition starts or is still on; False when it ends."""
    ward: str
    device: str = ""
    metric: str = ""
    start_ms: int
    ts_ms: int
    score: float
    """In [0, 1]; the peak of the scores behind this event."""
    value: float | None = None
    """The reading that triggered the event, where there is one (for device rules the
    reading the rule judged: the inside temperature of an overheating cabinet)."""
    explanation: str
    """Plain words a field crew can act on, e.g. 'inside temperature 58.3 °C, 4.1σ above
    this cabinet's usual for 14:00'."""
    value_metric: str = ""
    """The metric ``value`` is a reading of: ``metric`` for series events; for device
    rules (whose ``metric`` is empty) the one the rule judged, e.g. ``temp_inside``."""
    reference: float | None = None
    """The figure ``value`` is judged against, where one is meaningful (its kind says
    which): the limit crossed, the usual level, or the rate of change."""
    reference_kind: Reference | None = None
