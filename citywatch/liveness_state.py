"""A partition's liveness in its checkpoint: the liveness tracker's devices (when each was
last heard, online or not) and the ward silences of the area rule (which devices went
offline when, which wards are in an area outage by silence).

Without it a worker taking a partition over would not know a device that fell silent
just before the fail-over (never raised offline), would take a device's first report as
its first sight (an open offline alert never cleared), and would count a ward's outage
afresh.
"""

from collections.abc import Callable, Collection, Sequence

import msgspec

from anomaly.area_silence import AreaSilence
from ingest.liveness import DeviceLiveness, LivenessTracker


class LivenessState(msgspec.Struct, frozen=True):
    devices: msgspec.Raw
    """:meth:`ingest.liveness.LivenessTracker.to_bytes`"""
    offline_at: dict[str, tuple[str, int]]
    """:attr:`anomaly.area_silence.AreaSilence.offline_at`"""
    area_active: dict[str, int]
    """:attr:`anomaly.area_silence.AreaSilence.active`"""


_decoder = msgspec.json.Decoder(LivenessState)


def dump(
    tracker: LivenessTracker, area: AreaSilence, devices: Collection[str] | None = None
) -> bytes:
    """Every device's liveness, or only that of ``devices`` (a delta, for :func:`merge`);
    the ward silences in full either way (a few entries, but during an outage)."""
    return msgspec.json.encode(
        LivenessState(msgspec.Raw(tracker.to_bytes(devices)), area.offline_at, area.active)
    )


def load(data: bytes, tracker: LivenessTracker, area: AreaSilence, *, delta: bool = False) -> None:
    """Restore ``tracker`` and ``area`` from :func:`dump`'s bytes, or with ``delta`` apply
    a dump of some devices over the state a load gave; ``ValueError`` if damaged (then
    neither is changed). The ward silences are always whole."""
    try:
        state = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"damaged liveness state: {exc}") from exc
    (tracker.merge if delta else tracker.restore)(bytes(state.devices))
    area.offline_at = dict(state.offline_at)
    area.active = dict(state.area_active)


def merge(data: bytes, tracker: LivenessTracker, area: AreaSilence) -> None:
    """Apply a :func:`dump` of some devices (a delta) over the state :func:`load` gave."""
    load(data, tracker, area, delta=True)


_devices_decoder = msgspec.json.Decoder(list[DeviceLiveness])


def regroup(states: Sequence[bytes], target_of: Callable[[str], int], targets: int) -> list[bytes]:
    """:func:`dump` states of one partitioning regrouped by ward into ``targets`` states
    (a re-partition: each device's liveness and each ward's silence move with the ward)."""
    devices: list[list[DeviceLiveness]] = [[] for _ in range(targets)]
    offline: list[dict[str, tuple[str, int]]] = [{} for _ in range(targets)]
    active: list[dict[str, int]] = [{} for _ in range(targets)]
    for data in states:
        try:
            state = _decoder.decode(data)
            rows = _devices_decoder.decode(bytes(state.devices))
        except msgspec.DecodeError as exc:
            raise ValueError(f"damaged liveness state: {exc}") from exc
        for row in rows:
            devices[target_of(row.ward)].append(row)
        for device, (ward, at) in state.offline_at.items():
            offline[target_of(ward)][device] = (ward, at)
        for ward, at in state.area_active.items():
            active[target_of(ward)][ward] = at
    return [
        msgspec.json.encode(
            LivenessState(
                msgspec.Raw(msgspec.json.encode(sorted(devices[t], key=lambda r: r.device))),
                offline[t],
                active[t],
            )
        )
        for t in range(targets)
    ]
