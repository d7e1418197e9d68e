"""How eagerly alerts raise, clear, escalate and remind: the tunable part of the lifecycle."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from anomaly.events import DetectionKind

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class TypePolicy:
    """Anti-flapping settings of one alert type.

    An active detection with ``score < raise_score`` does not open an alert; an open alert
    whose detections fall below ``clear_score`` (or say ``active=False``) starts clearing.
    ``clear_score <= raise_score`` gives hysteresis between the two.
    """

    pending_ms: int = 0
    """Detected for this long before the alert is raised (0: at once)."""
    keep_firing_ms: int = 0
    """The condition must stay away this long before the alert clears."""
    raise_score: float = 0.0
    clear_score: float = 0.0

    def __post_init__(self) -> None:
        if self.pending_ms < 0 or self.keep_firing_ms < 0:
            raise ValueError("pending_ms and keep_firing_ms must be >= 0")
        if not 0.0 <= self.clear_score <= self.raise_score <= 1.0:
            raise ValueError(
                f"need 0 <= clear_score <= raise_score <= 1, got clear_score="
                f"{self.clear_score}, raise_score={self.raise_score}"
            )


_IMMEDIATE = TypePolicy(pending_ms=0, keep_firing_ms=2 * MINUTE_MS)

DEFAULT_TYPE_POLICIES: Mapping[DetectionKind, TypePolicy] = MappingProxyType(
    {
        # Critical, unambiguous conditions raise at once.
        DetectionKind.CABLE_CUT: _IMMEDIATE,
        DetectionKind.AREA_OUTAGE: _IMMEDIATE,
        DetectionKind.FLOODING: _IMMEDIATE,
        DetectionKind.INTRUSION: TypePolicy(pending_ms=0, keep_firing_ms=0),
        DetectionKind.POWER_LOSS: TypePolicy(pending_ms=MINUTE_MS, keep_firing_ms=2 * MINUTE_MS),
        # A device that reconnects within two minutes is not worth waking anyone.
        DetectionKind.OFFLINE: TypePolicy(pending_ms=2 * MINUTE_MS, keep_firing_ms=MINUTE_MS),
        # Statistical rules are noisier: wait, and clear with hysteresis.
        DetectionKind.BASELINE: TypePolicy(
            pending_ms=2 * MINUTE_MS, keep_firing_ms=5 * MINUTE_MS, raise_score=0.5, clear_score=0.3
        ),
        DetectionKind.TIME_OF_DAY: TypePolicy(
            pending_ms=5 * MINUTE_MS, keep_firing_ms=5 * MINUTE_MS, raise_score=0.5, clear_score=0.3
        ),
    }
)


@dataclass(frozen=True, slots=True)
class Policy:
    """Lifecycle settings for every alert type, plus flapping, escalation and reminders."""

    per_type: Mapping[DetectionKind, TypePolicy] = field(
        default_factory=lambda: DEFAULT_TYPE_POLICIES
    )
    default: TypePolicy = TypePolicy(pending_ms=MINUTE_MS, keep_firing_ms=2 * MINUTE_MS)
    flap_window_ms: int = 15 * MINUTE_MS
    flap_threshold: int = 4
    """This many raise/clear changes within the window mark the alert as flapping."""
    escalate_after_ms: int = 15 * MINUTE_MS
    """A critical alert not acknowledged this long after raising is escalated."""
    reminder_every_ms: int = 30 * MINUTE_MS
    """Unacknowledged active alerts are re-notified this often (0: never)."""
    critical_at_once: bool = True
    """A critical detection skips its type's pending period: a dead mains feed or a fibre
    with no light is not worth a minute's doubt (warnings still wait)."""

    def __post_init__(self) -> None:
        if self.flap_window_ms <= 0 or self.flap_threshold < 2:
            raise ValueError("flap_window_ms must be > 0 and flap_threshold >= 2")
        if self.escalate_after_ms <= 0 or self.reminder_every_ms < 0:
            raise ValueError("escalate_after_ms must be > 0 and reminder_every_ms >= 0")

    def for_type(self, kind: DetectionKind) -> TypePolicy:
        return self.per_type.get(kind, self.default)
