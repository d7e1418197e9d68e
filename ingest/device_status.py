"""``device_status`` points: a device's state and location for the city map and the API.

Written on every status message (a device announcing itself, or its Last Will) and on
every liveness change, so the latest point of each device says where it is and whether
it is online. The location comes from the ``info`` of the device's retained ``online``
status (kept in the device registry).
"""

from collections.abc import Callable, Sequence

from ingest.liveness import LivenessChange
from telemetry import DeviceInfo, DeviceKind
from telemetry.lineproto import encode_point

MEASUREMENT = "device_status"


def device_status_line(
    device: str,
    kind: DeviceKind,
    ward: str,
    *,
    online: bool,
    reason: str,
    ts_ms: int,
    info: DeviceInfo | None,
) -> str:
    """One ``device_status`` point (schema: telemetry.storage.SCHEMA["device_status"])."""
    tags = {"device": device, "kind": kind.value, "ward": ward}
    fields: dict[str, float | int | bool | str] = {"online": online, "reason": reason}
    if info is not None:
        if info.route:
            tags["route"] = info.route
        fields.update(street=info.street, lat=info.lat, lon=info.lon)
        if info.position is not None:
            fields["position"] = info.position
    return encode_point(MEASUREMENT, tags, fields, ts_ms)


def liveness_lines(
    changes: Sequence[LivenessChange], info_of: Callable[[str], DeviceInfo | None]
) -> list[str]:
    """The points of liveness changes: one ``citywatch_liveness`` (the transition) and
    one ``device_status`` (the device's state now) each."""
    lines = [
        encode_point(
            "citywatch_liveness",
            {"device": c.device, "ward": c.ward, "kind": c.kind.value},
            {"online": c.online, "reason": c.reason},
            c.at_ms,
        )
        for c in changes
    ]
    lines += [
        device_status_line(
            c.device,
            c.kind,
            c.ward,
            online=c.online,
            reason=c.reason,
            ts_ms=c.at_ms,
            info=info_of(c.device),
        )
        for c in changes
    ]
    return lines
