"""Devices: where they are, whether they are online, their open alerts and latest readings."""

import time
from typing import Annotated

from fastapi import APIRouter, Path, Query

from alerts.store import OpenAlerts
from api.deps import Limit, Reader, ServicesDep, Skip
from api.devices import DeviceFacts
from api.errors import AUTHED, NOT_FOUND, UNAVAILABLE, not_found
from api.schemas import (
    DeviceDetailPublic,
    DevicePublic,
    DevicesPublic,
    Id,
    ReadingPublic,
    WindowPointPublic,
)
from telemetry import CATALOGUE, DeviceKind

router = APIRouter(prefix="/devices", tags=["devices"], responses={**AUTHED, **UNAVAILABLE})


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _public(device: DeviceFacts, open_alerts: OpenAlerts) -> DevicePublic:
    status = "offline" if device.id in open_alerts.offline else device.status
    return DevicePublic(
        id=device.id,
        kind=device.kind,
        ward=device.ward,
        route=device.route,
        position=device.position,
        street=device.street,
        lat=device.lat,
        lon=device.lon,
        status=status,
        last_seen=device.last_seen,
        open_alerts=open_alerts.counts.get(device.id, 0),
    )


@router.get("", response_model=DevicesPublic, summary="List devices with location and status")
async def list_devices(
    *,
    principal: Reader,
    services: ServicesDep,
    skip: Skip = 0,
    limit: Limit = 100,
    ward: Id | None = None,
    kind: DeviceKind | None = None,
    status: Annotated[str | None, Query(pattern="^(online|offline|unknown)$")] = None,
) -> DevicesPublic:
    wards = principal.narrow([ward] if ward is not None else None)
    devices = await services.devices.scan(wards=wards, now_ms=_now_ms())
    open_alerts = await services.store.open_alerts_by_device(wards)
    rows = [_public(d, open_alerts) for d in devices if kind is None or d.kind is kind]
    if status is not None:
        rows = [r for r in rows if r.status == status]
    return DevicesPublic(data=rows[skip : skip + limit], count=len(rows))


@router.get(
    "/{device_id}",
    response_model=DeviceDetailPublic,
    responses=NOT_FOUND,
    summary="One device with its latest readings and a recent window",
)
async def get_device(
    device_id: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")],
    principal: Reader,
    services: ServicesDep,
    window_s: Annotated[
        int | None, Query(ge=60, le=7 * 24 * 3600, description="recent window (seconds)")
    ] = None,
) -> DeviceDetailPublic:
    window = window_s or services.settings.device_window_s
    found = await services.devices.get(device_id, window_s=window, now_ms=_now_ms())
    if found is None:
        raise not_found(f"device {device_id}")
    device, points = found
    principal.check_ward(device.ward, f"device {device_id}")
    open_alerts = await services.store.open_alerts_by_device(None, device=device_id)
    units = CATALOGUE[device.kind]
    return DeviceDetailPublic(
        **_public(device, open_alerts).model_dump(),
        readings=[
            ReadingPublic(metric=name, value=value, unit=units[name].unit)
            for name, value in device.readings.items()
        ],
        window=[WindowPointPublic(ts=ts, metrics=metrics) for ts, metrics in points],
        window_s=window,
    )
