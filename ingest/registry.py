"""What ingest knows about each device, learned from its retained ``online`` status.

The series key of a device's points (measurement = kind, tags ``device``, ``ward`` and,
for cable segments, ``route``) is built once per device and cached, so the hot path does
no escaping. The registry is saved next to the spool so a restarted ingest tags the
reports of a backlog correctly before the retained statuses arrive again.
"""

import logging
import os
import threading
from pathlib import Path

import msgspec

from telemetry import DeviceInfo, DeviceKind
from telemetry.lineproto import series_key

log = logging.getLogger(__name__)

_infos_decoder = msgspec.json.Decoder(list[DeviceInfo])


class DeviceRegistry:
    """Device metadata and cached series keys; safe to call from several threads."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._infos: dict[str, DeviceInfo] = {}
        self._series: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._dirty = False
        if path is not None and path.exists():
            try:
                infos = _infos_decoder.decode(path.read_bytes())
            except (OSError, msgspec.DecodeError) as exc:
                log.warning("ignoring unreadable device registry %s: %s", path, exc)
            else:
                self._infos = {info.id: info for info in infos}

    def __len__(self) -> int:
        return len(self._infos)

    def get(self, device: str) -> DeviceInfo | None:
        return self._infos.get(device)

    def known(self) -> list[DeviceInfo]:
        """Every device's metadata (a copy)."""
        with self._lock:
            return list(self._infos.values())

    def learn(self, info: DeviceInfo) -> bool:
        """Remember ``info``; True if it changed what we knew."""
        with self._lock:
            if self._infos.get(info.id) == info:
                return False
            self._infos[info.id] = info
            for key in [k for k in self._series if k[0] == info.id]:
                del self._series[key]
            self._dirty = True
            return True

    def series(self, device: str, kind: DeviceKind, ward: str) -> str:
        """``kind,device=..,ward=..[,route=..]`` for a report's line (ward from its topic)."""
        found = self._series.get((device, ward))
        if found is not None:
            return found
        tags = {"device": device, "ward": ward}
        info = self._infos.get(device)
        if kind is DeviceKind.CABLE_SEGMENT and info is not None and info.route:
            tags["route"] = info.route
        key = series_key(kind.value, tags)
        with self._lock:
            self._series[(device, ward)] = key
        return key

    def to_bytes(self) -> bytes:
        """Every device's metadata (JSON), e.g. for a checkpoint kept elsewhere than a file."""
        with self._lock:
            return msgspec.json.encode(sorted(self._infos.values(), key=lambda i: i.id))

    @classmethod
    def from_bytes(cls, data: bytes) -> "DeviceRegistry":
        """A registry holding :meth:`to_bytes`'s devices (not saved to any file)."""
        registry = cls()
        registry._infos = {info.id: info for info in _infos_decoder.decode(data)}
        return registry

    def save(self) -> None:
        """Write the registry atomically if it changed since the last save."""
        if self.path is None or not self._dirty:
            return
        with self._lock:
            data = msgspec.json.encode(sorted(self._infos.values(), key=lambda i: i.id))
            self._dirty = False
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.path)
