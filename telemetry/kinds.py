"""Device kinds and topic channels."""

from enum import StrEnum


class DeviceKind(StrEnum):
    """What a device is. The value is used in topics, payloads and as the InfluxDB measurement."""

    CABINET = "cabinet"
    """A street cabinet: active equipment, mains feed, UPS battery, fans, door and flood sensor."""
    CABLE_SEGMENT = "cable_segment"
    """A sensor node on an underground cable route, watching one segment of the duct."""


class Channel(StrEnum):
    """The last level of a device topic."""

    TELEMETRY = "telemetry"
    """Periodic reports carrying several metrics (QoS 1)."""
    EVENT = "event"
    """Sporadic happenings the device itself noticed (door opened, mains lost)."""
    STATUS = "status"
    """Retained ``online``/``offline``; the broker publishes ``offline`` as the Last Will."""
