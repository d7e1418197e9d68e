"""Which alerts share one cause: incident scopes for area outages, cable cuts and devices
that went down (offline or without mains), which inhibit their own dependent alerts.

Pure: the store asks these functions, with a device directory it was given, whether a new
root alert opens an incident and which open alerts belong to it.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from alerts.model import AlertKey, IncidentKind
from anomaly.events import DetectionKind
from telemetry import DeviceInfo


class DeviceLocation(NamedTuple):
    """Where a device sits (from its ``DeviceInfo``)."""

    ward: str
    route: str | None = None
    position: int | None = None


DeviceDirectory = Callable[[str], DeviceLocation | None]
"""Device id → location, or ``None`` when the device is unknown."""


def directory_of(infos: Iterable[DeviceInfo]) -> DeviceDirectory:
    """A directory over known devices (e.g. from their retained ``online`` statuses).

    The wiring may instead pass its own callable over a live registry.
    """
    table = {i.id: DeviceLocation(i.ward, i.route, i.position) for i in infos}
    return table.get


def no_directory(_device: str) -> DeviceLocation | None:
    """A directory that knows no device (cable-cut grouping then finds no children)."""
    return None


AREA_CHILD_TYPES = frozenset(
    {DetectionKind.POWER_LOSS, DetectionKind.OFFLINE, DetectionKind.DROPOUT}
)
POWER_METRICS = frozenset({"mains_voltage", "on_battery", "battery_soc", "battery_voltage"})
CUT_CHILD_TYPES = frozenset({DetectionKind.OFFLINE, DetectionKind.DROPOUT, DetectionKind.CABLE_CUT})
SIGNAL_METRICS = frozenset({"signal", "optical_loss"})
DEVICE_ROOT_TYPES = frozenset({DetectionKind.OFFLINE, DetectionKind.POWER_LOSS})
"""A device that stopped reporting, or lost its mains, roots a device-down incident."""
DEVICE_CHILD_TYPES = frozenset(
    {DetectionKind.OFFLINE, DetectionKind.POWER_LOSS, DetectionKind.DROPOUT, DetectionKind.FLATLINE}
)
"""What a device down explains of the same device: its silent or frozen sensors, and the
other of offline / mains lost (a cabinet on battery goes offline when the battery ends)."""
DEVICE_CHILD_METRICS = POWER_METRICS | {"fan_rpm"}
"""Readings that follow from the mains: the power readings, and fans that stop with it."""


@dataclass(frozen=True, slots=True)
class IncidentScope:
    kind: IncidentKind
    ward: str
    route: str | None = None
    position: int | None = None
    root_device: str = ""

    @property
    def title(self) -> str:
        if self.kind is IncidentKind.AREA_OUTAGE:
            return f"Area outage in {self.ward} (mains, or many devices silent together)"
        if self.kind is IncidentKind.DEVICE_DOWN:
            return f"{self.root_device} down (offline or without mains)"
        return f"Cable cut on route {self.route} at segment {self.position} ({self.root_device})"


def scope_of(key: AlertKey, directory: DeviceDirectory) -> IncidentScope | None:
    """The incident a root alert opens, or ``None`` when its type is not a root type (or
    a cut segment's route is unknown)."""
    if key.type is DetectionKind.AREA_OUTAGE:
        return IncidentScope(IncidentKind.AREA_OUTAGE, key.ward)
    if key.type in DEVICE_ROOT_TYPES and key.device:
        return IncidentScope(IncidentKind.DEVICE_DOWN, key.ward, root_device=key.device)
    if key.type is DetectionKind.CABLE_CUT:
        where = directory(key.device)
        if where is None or where.route is None or where.position is None:
            return None
        return IncidentScope(
            IncidentKind.CABLE_CUT, key.ward, where.route, where.position, key.device
        )
    return None


def in_scope(scope: IncidentScope, key: AlertKey, directory: DeviceDirectory) -> bool:
    """Whether an alert is a consequence of the incident's cause (never the root itself)."""
    if scope.kind is IncidentKind.AREA_OUTAGE:
        return (
            key.type is not DetectionKind.AREA_OUTAGE
            and bool(key.device)
            and key.ward == scope.ward
            and (key.type in AREA_CHILD_TYPES or key.metric in POWER_METRICS)
        )
    if scope.kind is IncidentKind.DEVICE_DOWN:
        return key.device == scope.root_device and (
            key.type in DEVICE_CHILD_TYPES or key.metric in DEVICE_CHILD_METRICS
        )
    if key.device == scope.root_device and key.type is DetectionKind.CABLE_CUT:
        return False
    if not (key.type in CUT_CHILD_TYPES or key.metric in SIGNAL_METRICS):
        return False
    where = directory(key.device)
    return (
        where is not None
        and where.route == scope.route
        and where.position is not None
        and scope.position is not None
        and where.position >= scope.position
    )
