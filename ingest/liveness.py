"""Device liveness: the ``status`` channel (incl. the Last Will) plus an inactivity timeout.

A device is offline when it says so (retained ``offline``, or the broker publishing its
Last Will), or when nothing arrived from it for ``misses`` reporting periods plus a grace.
The period is the catalogue's (the shortest ``period_s`` of the kind's metrics), or the
device's observed period (an EWMA of the gaps between its report timestamps) if shorter,
so a device configured to report faster is noticed sooner. Silence is measured on
ingest's clock (arrival time; injectable for tests), not on the device's clock.

A tracker's state (each device's kind, ward, online state, last arrival and period) goes
into a checkpoint with :meth:`LivenessTracker.to_bytes` and comes back with
:meth:`LivenessTracker.restore`: a cluster worker taking over a partition then knows
when each device was last heard (on the checkpointed clock, which must be the one the
tracker reads) and whether it was online.
"""

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

import msgspec

from telemetry import CATALOGUE, DeviceKind, Status

LivenessReason = Literal["status", "last_will", "timeout", "report"]

KIND_PERIOD_S: dict[DeviceKind, float] = {
    kind: min(m.period_s for m in metrics.values()) for kind, metrics in CATALOGUE.items()
}


@dataclass(frozen=True, slots=True)
class LivenessChange:
    """A device went online or offline."""

    device: str
    kind: DeviceKind
    ward: str
    online: bool
    previous: bool | None
    """The state before; None when ingest had not seen the device yet (e.g. after a restart)."""
    at_ms: int
    """When ingest noticed, ms since the epoch (ingest's clock)."""
    reason: LivenessReason


class DeviceLiveness(msgspec.Struct, array_like=True, frozen=True):
    """One device's liveness in a checkpoint."""

    device: str
    kind: DeviceKind
    ward: str
    online: bool | None
    last_seen_s: float
    last_ts_ms: int
    period_s: float


_snapshot_decoder = msgspec.json.Decoder(list[DeviceLiveness])


class _Device:
    __slots__ = ("kind", "last_seen_s", "last_ts_ms", "online", "period_s", "ward")

    def __init__(self, kind: DeviceKind, ward: str, now_s: float) -> None:
        self.kind = kind
        self.ward = ward
        self.online: bool | None = None
        self.last_seen_s = now_s
        self.last_ts_ms = -1
        self.period_s = KIND_PERIOD_S[kind]


class LivenessTracker:
    """Tracks every device; thread-safe (the receive loop feeds it, a ticker checks it)."""

    def __init__(
        self,
        *,
        misses: float = 3.0,
        grace_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        smoothing: float = 0.2,
    ) -> None:
        if misses <= 0 or grace_s < 0:
            raise ValueError("liveness needs misses > 0 and grace_s >= 0")
        self.misses = misses
        self.grace_s = grace_s
        self.clock = clock
        self.smoothing = smoothing
        self._devices: dict[str, _Device] = {}
        self._lock = threading.Lock()

    def timeout_s(self, device: str) -> float:
        """Silence after which ``device`` counts as offline."""
        state = self._devices[device]
        return self.misses * min(state.period_s, KIND_PERIOD_S[state.kind]) + self.grace_s

    def online_count(self) -> int:
        return sum(1 for d in self._devices.values() if d.online)

    def state(self, device: str) -> bool | None:
        found = self._devices.get(device)
        return None if found is None else found.online

    def _device(self, device: str, kind: DeviceKind, ward: str, now_s: float) -> _Device:
        state = self._devices.get(device)
        if state is None:
            state = self._devices[device] = _Device(kind, ward, now_s)
        return state

    def _change(
        self, device: str, state: _Device, online: bool, now_s: float, reason: LivenessReason
    ) -> LivenessChange | None:
        if state.online is online:
            return None
        change = LivenessChange(
            device, state.kind, state.ward, online, state.online, int(now_s * 1000), reason
        )
        state.online = online
        return change

    def on_report(
        self, device: str, kind: DeviceKind, ward: str, ts_ms: int
    ) -> LivenessChange | None:
        """A report arrived (any order); returns a transition to online, if any."""
        now_s = self.clock()
        with self._lock:
            state = self._device(device, kind, ward, now_s)
            state.last_seen_s = now_s
            if ts_ms > state.last_ts_ms:
                if state.last_ts_ms >= 0:
                    gap_s = (ts_ms - state.last_ts_ms) / 1000.0
                    state.period_s += self.smoothing * (gap_s - state.period_s)
                state.last_ts_ms = ts_ms
            return self._change(device, state, True, now_s, "report")

    def on_status(self, status: Status, ward: str) -> LivenessChange | None:
        """A status message arrived; a Last Will is an ``offline`` without ``ts``."""
        now_s = self.clock()
        with self._lock:
            state = self._device(status.device, status.kind, ward, now_s)
            state.last_seen_s = now_s
            if status.state == "online":
                return self._change(status.device, state, True, now_s, "status")
            reason: LivenessReason = "status" if status.ts is not None else "last_will"
            return self._change(status.device, state, False, now_s, reason)

    def to_bytes(self, devices: Collection[str] | None = None) -> bytes:
        """Every device's state (JSON), for :meth:`restore`; only those of ``devices``
        (the known ones) if given, for :meth:`merge`."""
        with self._lock:
            known = self._devices
            names = sorted(known if devices is None else (d for d in devices if d in known))
            rows = [
                DeviceLiveness(
                    device, d.kind, d.ward, d.online, d.last_seen_s, d.last_ts_ms, d.period_s
                )
                for device, d in ((name, known[name]) for name in names)
            ]
        return msgspec.json.encode(rows)

    def restore(self, data: bytes) -> None:
        """Replace every device's state with a :meth:`to_bytes` snapshot's.

        Raises ``ValueError`` on a damaged snapshot (the state is then left as it was).
        """
        devices = _decode_snapshot(data)
        with self._lock:
            self._devices = devices

    def merge(self, data: bytes) -> None:
        """Replace the state of the devices a :meth:`to_bytes` snapshot holds (a part of
        them: what changed since a full one); ``ValueError`` as :meth:`restore`."""
        devices = _decode_snapshot(data)
        with self._lock:
            self._devices.update(devices)

    def check(self) -> list[LivenessChange]:
        """Devices whose silence exceeded their timeout since the last check go offline."""
        now_s = self.clock()
        changes: list[LivenessChange] = []
        with self._lock:
            for device, state in self._devices.items():
                if not state.online:
                    continue
                limit = self.misses * min(state.period_s, KIND_PERIOD_S[state.kind]) + self.grace_s
                if now_s - state.last_seen_s > limit:
                    change = self._change(device, state, False, now_s, "timeout")
                    if change is not None:
                        changes.append(change)
        return changes


def _devices(rows: list[DeviceLiveness]) -> dict[str, _Device]:
    devices: dict[str, _Device] = {}
    for row in rows:
        state = devices[row.device] = _Device(row.kind, row.ward, row.last_seen_s)
        state.online = row.online
        state.last_ts_ms = row.last_ts_ms
        state.period_s = row.period_s
    return devices


def _decode_snapshot(data: bytes) -> dict[str, _Device]:
    try:
        rows = _snapshot_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"damaged liveness snapshot: {exc}") from exc
    return _devices(rows)
