"""Where device facts come from: InfluxDB readings plus the ingest's status records.

Kept in one module so it is easy to adapt when ingest's storage changes. What it assumes:

- readings: one measurement per device kind (``cabinet``, ``cable_segment``), tags ``ward``,
  ``device`` (and ``route`` for cable segments), one field per catalogue metric;
- status: measurement :data:`STATUS_MEASUREMENT` written by ingest from the retained status
  messages, tags ``ward``, ``device``, ``kind`` (``route``), fields ``state``
  (``online``/``offline``), ``street``, ``lat``, ``lon``, ``position``. When it is missing,
  location fields are ``None`` and the status is derived from how recently readings arrived.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from api.influx import InfluxClient, Series, quote_ident, quote_string
from telemetry import CATALOGUE, DeviceKind

STATUS_MEASUREMENT = "device_status"
SILENT_GRACE_MS = 30_000
"""A device is taken as offline when silent for 3 metric periods plus this grace."""

DeviceState = Literal["online", "offline", "unknown"]
Value = float | bool


@dataclass(slots=True)
class DeviceFacts:
    """What InfluxDB knows about one device."""

    id: str
    kind: DeviceKind
    ward: str
    route: str | None = None
    position: int | None = None
    street: str | None = None
    lat: float | None = None
    lon: float | None = None
    status: DeviceState = "unknown"
    last_seen: int | None = None
    """Time (epoch ms, device time) of the latest reading."""
    status_at: int | None = None
    readings: dict[str, Value] = field(default_factory=dict)


def _silent_after_ms(kind: DeviceKind) -> int:
    period_s = max(m.period_s for m in CATALOGUE[kind].values())
    return int(3 * period_s * 1000) + SILENT_GRACE_MS


def _metric_values(kind: DeviceKind, row: dict[str, Any]) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for name, spec in CATALOGUE[kind].items():
        value = row.get(name)
        if value is None:
            continue
        out[name] = bool(value) if spec.dtype == "bool" else float(value)
    return out


def _where(clauses: list[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def _ward_clause(wards: list[str] | None) -> list[str]:
    if wards is None:
        return []
    if not wards:
        return ["false"]
    return ["(" + " OR ".join(f"{quote_ident('ward')} = {quote_string(w)}" for w in wards) + ")"]


_MEASUREMENTS = ", ".join(quote_ident(kind.value) for kind in DeviceKind)


class DeviceDirectory:
    """Device list and device detail from InfluxDB."""

    def __init__(self, influx: InfluxClient, *, lookback_s: int) -> None:
        self._influx = influx
        self._lookback_s = lookback_s

    async def scan(self, *, wards: list[str] | None, now_ms: int) -> list[DeviceFacts]:
        """Every device seen within the lookback (``wards=None``: all wards), sorted by id."""
        scope = _ward_clause(wards)
        latest_q = (
            f"SELECT * FROM {_MEASUREMENTS}"
            f"{_where([f'time > now() - {self._lookback_s}s', *scope])}"
            f" GROUP BY {quote_ident('device')} ORDER BY time DESC LIMIT 1"
        )
        status_q = (
            f"SELECT * FROM {quote_ident(STATUS_MEASUREMENT)}{_where(scope)}"
            f" GROUP BY {quote_ident('device')} ORDER BY time DESC LIMIT 1"
        )
        latest, status = await asyncio.gather(
            self._influx.query(latest_q), self._influx.query(status_q)
        )
        devices = _merge(latest, status)
        for device in devices.values():
            _decide_status(device, now_ms)
        return [devices[k] for k in sorted(devices)]

    async def get(
        self, device_id: str, *, window_s: int, now_ms: int
    ) -> tuple[DeviceFacts, list[tuple[int, dict[str, Value]]]] | None:
        """One device and its readings of the last ``window_s`` seconds (oldest first).

        ``device_id`` must already be a valid id (``telemetry.is_valid_id``).
        """
        where = f"{quote_ident('device')} = {quote_string(device_id)}"
        latest_q = f"SELECT * FROM {_MEASUREMENTS} WHERE {where} ORDER BY time DESC LIMIT 1"
        status_q = (
            f"SELECT * FROM {quote_ident(STATUS_MEASUREMENT)} WHERE {where}"
            " ORDER BY time DESC LIMIT 1"
        )
        window_q = (
            f"SELECT * FROM {_MEASUREMENTS} WHERE {where} AND time > now() - {window_s}s"
            " ORDER BY time ASC LIMIT 10000"
        )
        latest, status, window = await asyncio.gather(
            self._influx.query(latest_q),
            self._influx.query(status_q),
            self._influx.query(window_q),
        )
        for series in latest:
            series.tags.setdefault("device", device_id)
        for series in status:
            series.tags.setdefault("device", device_id)
        devices = _merge(latest, status)
        device = devices.get(device_id)
        if device is None:
            return None
        _decide_status(device, now_ms)
        points: list[tuple[int, dict[str, Value]]] = []
        for series in window:
            if series.name != device.kind.value:
                continue
            points.extend(
                (int(row["time"]), _metric_values(device.kind, row)) for row in series.rows
            )
        points.sort(key=lambda point: point[0])
        return device, points


def _merge(latest: list[Series], status: list[Series]) -> dict[str, DeviceFacts]:
    devices: dict[str, DeviceFacts] = {}
    for series in latest:
        try:
            kind = DeviceKind(series.name)
        except ValueError:
            continue
        for row in series.rows:
            device_id = series.tags.get("device") or row.get("device")
            if not device_id:
                continue
            time_ms = int(row["time"])
            known = devices.get(device_id)
            if known is not None and (known.last_seen or 0) >= time_ms:
                continue
            devices[device_id] = DeviceFacts(
                id=device_id,
                kind=kind,
                ward=str(row.get("ward") or ""),
                route=row.get("route"),
                last_seen=time_ms,
                readings=_metric_values(kind, row),
            )
    for series in status:
        for row in series.rows:
            device_id = series.tags.get("device") or row.get("device")
            if not device_id:
                continue
            device = devices.get(device_id)
            if device is None:
                try:
                    kind = DeviceKind(row.get("kind") or "")
                except ValueError:
                    continue
                device = devices[device_id] = DeviceFacts(
                    id=device_id, kind=kind, ward=str(row.get("ward") or "")
                )
            device.status_at = int(row["time"])
            device.status = "offline" if row.get("state") == "offline" else "online"
            device.street = row.get("street") or device.street
            device.lat = _float_or_none(row.get("lat"))
            device.lon = _float_or_none(row.get("lon"))
            device.route = row.get("route") or device.route
            position = row.get("position")
            device.position = int(position) if position is not None else None
    return devices


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _decide_status(device: DeviceFacts, now_ms: int) -> None:
    """Status from the latest of: the status record and the readings' recency."""
    if device.last_seen is None:
        return  # only the status record speaks (or nothing: unknown)
    newer_than_status = device.status_at is None or device.last_seen > device.status_at
    silent = now_ms - device.last_seen > _silent_after_ms(device.kind)
    if silent:
        device.status = "offline"
    elif newer_than_status:
        device.status = "online"
