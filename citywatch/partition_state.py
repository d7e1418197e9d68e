"""A partition's state as a cluster worker checkpoints it: a full checkpoint now and then,
a delta with every other save, and the state of a version rebuilt from them.

A full checkpoint of a 170,000-series partition is ~19 MB of detector state (0.7 s to
write) and ~5 MB of JSON (every device's metadata and liveness), whatever the batch; a
batch touches a few thousand series. A delta holds what changed since the save before:
the detector rows the batches touched (:mod:`anomaly.delta`), the devices whose metadata
was learned, the liveness of the devices heard (and the ward silences, a few entries).

When a save is full instead (:class:`SnapshotPolicy`): when the deltas since the last
full checkpoint, this one included, would add up to more than ``share`` of its size, or
number more than ``max_deltas``. With ``share`` 1, a save costs on average at most twice
a delta (each delta byte is written once more in the next full checkpoint), a takeover
reads at most twice a full checkpoint, and the table keeps at most that per partition.
The count bounds what the bytes do not: many tiny deltas (tick-only saves) each cost a
row and a decode at a takeover.
"""

from dataclasses import dataclass

import msgspec

from anomaly import Detector, DetectorConfig
from anomaly.area_silence import AreaSilence
from citywatch import liveness_state
from citywatch.checkpoints import Checkpoint, Delta
from ingest.liveness import LivenessTracker
from ingest.registry import DeviceRegistry
from telemetry import DeviceInfo

_infos = msgspec.json.Decoder(list[DeviceInfo])


class TrackedDevices(DeviceRegistry):
    """The partition's device registry, knowing which devices it learned since the last
    save (their metadata is the delta's)."""

    def __init__(self) -> None:
        super().__init__()
        self.changed: set[str] = set()

    def learn(self, info: DeviceInfo) -> bool:
        if not super().learn(info):
            return False
        self.changed.add(info.id)
        return True

    def changed_bytes(self) -> bytes:
        return msgspec.json.encode([self.get(d) for d in sorted(self.changed)])


@dataclass(frozen=True)
class Full:
    state: bytes
    devices: bytes
    liveness: bytes

    @property
    def size(self) -> int:
        return len(self.state) + len(self.devices) + len(self.liveness)


def delta_size(delta: Delta) -> int:
    return len(delta.state) + len(delta.devices) + len(delta.liveness)


@dataclass
class SnapshotPolicy:
    """Full checkpoint or delta (see the module's text)."""

    share: float = 1.0
    max_deltas: int = 256
    full_bytes: int = 0
    """Of the full checkpoint the deltas follow (0: none known, the next save is full)."""
    delta_bytes: int = 0
    deltas: int = 0

    def follow(self, checkpoint: Checkpoint | None) -> None:
        """The state loaded: a checkpoint (a full one and its deltas) or none."""
        if checkpoint is None:
            self.full_bytes = self.delta_bytes = self.deltas = 0
            return
        self.full_bytes = len(checkpoint.state) + len(checkpoint.devices)
        self.full_bytes += len(checkpoint.liveness or b"")
        self.delta_bytes = sum(delta_size(d) for d in checkpoint.deltas)
        self.deltas = len(checkpoint.deltas)

    def wants_full(self, size: int) -> bool:
        """Whether a save whose delta has ``size`` bytes should be full instead."""
        return (
            self.full_bytes == 0
            or self.deltas >= self.max_deltas
            or self.delta_bytes + size > self.share * self.full_bytes
        )

    def saved_full(self, size: int) -> None:
        self.full_bytes, self.delta_bytes, self.deltas = size, 0, 0

    def saved_delta(self, size: int) -> None:
        self.delta_bytes += size
        self.deltas += 1


def full(
    detector: Detector, devices: TrackedDevices, tracker: LivenessTracker, area: AreaSilence
) -> Full:
    return Full(detector.to_bytes(), devices.to_bytes(), liveness_state.dump(tracker, area))


def delta(
    version: int,
    detector: Detector,
    devices: TrackedDevices,
    tracker: LivenessTracker,
    area: AreaSilence,
    heard: set[str],
) -> Delta:
    """Version ``version``'s delta: what changed since the save before; ``heard``: the
    devices whose liveness changed since."""
    return Delta(
        version,
        detector.delta_bytes(),
        devices.changed_bytes(),
        liveness_state.dump(tracker, area, heard),
    )


def detector_of(checkpoint: Checkpoint, config: DetectorConfig | None) -> Detector:
    """The checkpoint's detector: the full one, then each delta."""
    detector = Detector.from_bytes(checkpoint.state, config)
    for d in checkpoint.deltas:
        detector.apply_delta(d.state)
    return detector


def devices_of(checkpoint: Checkpoint) -> TrackedDevices:
    devices = TrackedDevices()
    for data in (checkpoint.devices, *(d.devices for d in checkpoint.deltas)):
        for info in _infos.decode(data):
            devices.learn(info)
    devices.changed.clear()
    return devices


def liveness_into(checkpoint: Checkpoint, tracker: LivenessTracker, area: AreaSilence) -> None:
    """The checkpoint's liveness into ``tracker`` and ``area`` (nothing from a worker
    before liveness was checkpointed); ``ValueError`` if damaged."""
    if checkpoint.liveness is None:
        return
    liveness_state.load(checkpoint.liveness, tracker, area)
    for d in checkpoint.deltas:
        liveness_state.merge(d.liveness, tracker, area)


def liveness_of(checkpoint: Checkpoint, config: DetectorConfig | None = None) -> bytes | None:
    """The checkpoint's liveness as one :func:`liveness_state.dump` (a re-partition)."""
    if checkpoint.liveness is None:
        return None
    tracker, area = LivenessTracker(), AreaSilence(config or DetectorConfig())
    liveness_into(checkpoint, tracker, area)
    return liveness_state.dump(tracker, area)
