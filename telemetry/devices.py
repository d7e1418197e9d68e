"""Device metadata: where a device is and what it watches."""

import msgspec

from telemetry.kinds import DeviceKind


class DeviceInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A device as the platform knows it; carried in the retained ``online`` status."""

    id: str
    kind: DeviceKind
    ward: str
    """ASCII codename of the ward or commune, e.g. ``phuong_hoan_kiem``."""
    street: str
    """Street name in its Vietnamese spelling."""
    lat: float
    lon: float
    route: str | None = None
    """Cable segments only: the route (duct run) the segment belongs to."""
    position: int | None = None
    """Cable segments only: 0-based index of the segment along its route, from the exchange."""
