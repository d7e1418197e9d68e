"""Where device facts come from: InfluxDB readings plus ingest's ``device_status`` points.

Kept in one module so it is easy to adapt when the storage changes. It reads what
``telemetry.storage.SCHEMA`` declares (a unit test checks every name used here):

- readings: one measurement per device kind (``cabinet``, ``cable_segment``), tags ``ward``,
  ``device`` (and ``route``), one field per catalogue metric;
- ``device_status``: written by ingest on every status message and liveness change, tags
  ``ward``, ``device``, ``kind``, ``route``, fields ``online`` (bool), ``reason``, and —
  only on points made from a retained ``online`` status — ``street``, ``lat``, ``lon``,
  ``position``. So the state is the latest ``online`` value and the location the latest
  non-null location fields (InfluxQL's ``last()`` skips nulls), queried separately.

A device with no status point gets its state from how recently its readings arrived.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from telemetry import CATALOGUE, DeviceKind
from telemetry.influxdb import AsyncInfluxClient, Series, quote_ident, quote_string
from telemetry.storage import SCHEMA

STATUS_MEASUREMENT = SCHEMA["device_status"].name
STATE_FIELD = "online"
LOCATION_FIELDS = ("street", "lat", "lon", "position")
SERIES_TAGS = ("device", "ward", "kind", "route")
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


def _device_clause(device_id: str) -> list[str]:
    return [f"{quote_ident('device')} = {quote_string(device_id)}"]


_MEASUREMENTS = ", ".join(quote_ident(kind.value) for kind in DeviceKind)
_STATUS = quote_ident(STATUS_MEASUREMENT)
_GROUP_ALL_TAGS = ", ".join(quote_ident(t) for t in SERIES_TAGS)


def _status_queries(where: list[str]) -> tuple[str, str]:
    state = (
        f"SELECT last({quote_ident(STATE_FIELD)}) AS {quote_ident(STATE_FIELD)}"
        f" FROM {_STATUS}{_where(where)} GROUP BY {_GROUP_ALL_TAGS}"
    )
    location = (
        "SELECT "
        + ", ".join(f"last({quote_ident(f)}) AS {quote_ident(f)}" for f in LOCATION_FIELDS)
        + f" FROM {_STATUS}{_where(where)} GROUP BY {quote_ident('device')}"
    )
    return state, location


class DeviceDirectory:
    """Device list and device detail from InfluxDB."""

    def __init__(self, influx: AsyncInfluxClient, *, lookback_s: int) -> None:
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
        state_q, location_q = _status_queries(scope)
        latest, state, location = await asyncio.gather(
            self._influx.query(latest_q),
            self._influx.query(state_q),
            self._influx.query(location_q),
        )
        devices = _merge(latest, state, location)
        for device in devices.values():
            _decide_status(device, now_ms)
        return [devices[k] for k in sorted(devices)]

    async def get(
        self, device_id: str, *, window_s: int, now_ms: int
    ) -> tuple[DeviceFacts, list[tuple[int, dict[str, Value]]]] | None:
        """One device and its readings of the last ``window_s`` seconds (oldest first).

        ``device_id`` must already be a valid id (``telemetry.is_valid_id``).
        """
        where = _device_clause(device_id)
        latest_q = f"SELECT * FROM {_MEASUREMENTS}{_where(where)} ORDER BY time DESC LIMIT 1"
        window_q = (
            f"SELECT * FROM {_MEASUREMENTS}{_where([*where, f'time > now() - {window_s}s'])}"
            " ORDER BY time ASC LIMIT 10000"
        )
        state_q, location_q = _status_queries(where)
        latest, state, location, window = await asyncio.gather(
            self._influx.query(latest_q),
            self._influx.query(state_q),
            self._influx.query(location_q),
            self._influx.query(window_q),
        )
        for series in latest:
            series.tags.setdefault("device", device_id)
        device = _merge(latest, state, location).get(device_id)
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


def _rows(series_list: list[Series]) -> list[tuple[str, dict[str, Any]]]:
    """(measurement, row with the series tags merged in) for every row."""
    return [(s.name, {**s.tags, **row}) for s in series_list for row in s.rows]


def _merge(
    latest: list[Series], state: list[Series], location: list[Series]
) -> dict[str, DeviceFacts]:
    devices: dict[str, DeviceFacts] = {}
    for measurement, row in _rows(latest):
        try:
            kind = DeviceKind(measurement)
        except ValueError:
            continue
        device_id = row.get("device")
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
            route=row.get("route") or None,
            last_seen=time_ms,
            readings=_metric_values(kind, row),
        )
    # Several status series per device when its tags changed: the latest wins.
    for _, row in sorted(_rows(state), key=lambda item: int(item[1]["time"])):
        device_id = row.get("device")
        if not device_id or row.get(STATE_FIELD) is None:
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
        device.status = "online" if row[STATE_FIELD] else "offline"
        device.route = row.get("route") or device.route
    for _, row in _rows(location):
        device = devices.get(row.get("device") or "")
        if device is None:
            continue
        device.street = row.get("street") or device.street
        device.lat = _float_or_none(row.get("lat"))
        device.lon = _float_or_none(row.get("lon"))
        position = row.get("position")
        device.position = int(position) if isinstance(position, int | float) else None
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
