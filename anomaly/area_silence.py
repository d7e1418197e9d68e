"""The area rule for silence: many devices of one ward going offline together.

A street's power or its shared backhaul failing takes a whole group of devices off the
air at once, and each would raise its own offline alert. Like the on-battery area rule
(:meth:`anomaly.rules.DeviceRules._area`), this one raises one ward-level
``AREA_OUTAGE`` when a share of a ward's devices went offline within a window, held
while half that share stays offline; the alert layer then groups the devices' offline
alerts under it (one card for the outage). Pure: liveness changes and the time come in.
"""

from __future__ import annotations

from anomaly.config import DetectorConfig
from anomaly.events import Detection, DetectionKind, Reference, Severity

AREA_SILENCE_METRIC = "offline"
"""The metric field of its alerts: keeps them apart from the on-battery area alert of the
same ward (an alert's key includes the metric)."""


class AreaSilence:
    """Offline devices per ward, and which wards are in an area outage by silence."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.offline_at: dict[str, tuple[str, int]] = {}
        """Offline device → (its ward, when it went offline)."""
        self.active: dict[str, int] = {}
        """Ward in an outage → when it began."""

    def change(
        self, device: str, ward: str, *, online: bool, now_ms: int, ward_devices: int
    ) -> list[Detection]:
        """A device went offline (or came back); ``ward_devices``: the ward's devices the
        platform knows. The area detection that starts or ends, if any."""
        if online:
            self.offline_at.pop(device, None)
        else:
            self.offline_at.setdefault(device, (ward, now_ms))
        cfg = self.config
        offline = [t for w, t in self.offline_at.values() if w == ward]
        recent = sum(1 for t in offline if t >= now_ms - cfg.area_window_ms)
        total = max(ward_devices, len(offline), 1)
        was = ward in self.active
        if was:
            on = (
                len(offline) >= cfg.area_min_cabinets and len(offline) / total >= cfg.area_share / 2
            )
        else:
            on = recent >= cfg.area_min_cabinets and recent / total >= cfg.area_share
        if on == was:
            return []
        if on:
            self.active[ward] = now_ms
            started = now_ms
        else:
            started = self.active.pop(ward)
        text = (
            f"{len(offline)} of {total} devices in {ward} went silent within "
            f"{cfg.area_window_ms // 60_000} min: area outage (power or backhaul)"
        )
        return [
            Detection(
                kind=DetectionKind.AREA_OUTAGE,
                severity=Severity.CRITICAL,
                active=on,
                ward=ward,
                metric=AREA_SILENCE_METRIC,
                start_ms=started,
                ts_ms=now_ms,
                score=min(1.0, len(offline) / total) if on else 0.0,
                value=float(len(offline)),
                reference=float(total),
                reference_kind=Reference.TOTAL,
                explanation=text if on else f"ended: devices back, {text}",
            )
        ]
