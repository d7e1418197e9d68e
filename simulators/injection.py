"""Turning scenario faults into effects on the simulated devices, and into labels.

``resolve`` picks each fault's devices in a given fleet (by ward and share, count or
ids; seeded); ``FaultEngine`` then tells the physics what the world does to the devices
at each step, distorts readings for sensor faults, decides which reports get through, and
keeps the ground-truth labels.
"""

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from simulators.faults import (
    CableCut,
    ClockSkew,
    DoorIntrusion,
    Dropout,
    FanFailure,
    FaultSpec,
    FibreDegradation,
    Flooding,
    MainsOutage,
    Noise,
    Silent,
    Spikes,
    StuckSensor,
)
from simulators.fleet import Fleet
from simulators.labels import Label
from simulators.physics import (
    RECHARGE_HOURS_MAX,
    RECOVERY_S,
    Array,
    CabinetConditions,
    Mask,
    SegmentConditions,
)
from simulators.scenario import Scenario
from telemetry import CATALOGUE, DeviceKind

log = logging.getLogger(__name__)
Index = npt.NDArray[np.int64]

FLOOD_RAMP = 0.3
"""Share of a flood's window spent rising (and again receding)."""


class ResolveError(ValueError):
    """A scenario fault that cannot be placed in this fleet."""


@dataclass
class ActiveFault:
    """A fault placed in a fleet: its devices (kind-local slots) and its time window."""

    index: int
    spec: FaultSpec
    start_ms: int
    end_ms: int
    targets: dict[DeviceKind, Index]
    downstream: Index = field(default_factory=lambda: np.empty(0, np.int64))
    """cable_cut only: segments past the cut on the same routes (they go dark too)."""
    severity: dict[DeviceKind, Array] = field(default_factory=dict)
    """Per target, 0.3-1: how hard the fault hits it (flood depth)."""
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    stuck_values: Array | None = None
    wanted_ms: Array | None = None
    """fan_failure only: per cabinet target, when its controller first wanted the failed
    fan (NaN: not yet); the fault shows from then on."""

    def active(self, t_ms: float) -> bool:
        return self.start_ms <= t_ms < self.end_ms

    def progress(self, t_ms: float) -> float:
        return (t_ms - self.start_ms) / (self.end_ms - self.start_ms)


@dataclass(frozen=True)
class KindIndex:
    """Per kind: the global fleet index of each kind-local slot."""

    slots: dict[DeviceKind, Index]

    @classmethod
    def of(cls, fleet: Fleet) -> "KindIndex":
        return cls({kind: fleet.indices(kind) for kind in DeviceKind})


def resolve(
    scenario: Scenario, fleet: Fleet, start_ms: int, end_ms: int, seed: int
) -> list[ActiveFault]:
    """Place each fault of ``scenario`` in ``fleet``; faults past the end are dropped."""
    kinds = KindIndex.of(fleet)
    placed: list[ActiveFault] = []
    for index, spec in enumerate(scenario.faults):
        where = f"faults[{index}] ({spec.fault})"
        fault_start = start_ms + round(spec.at * 1000)
        if fault_start >= end_ms:
            log.info("%s starts after the simulation ends; skipped", where)
            continue
        rng = np.random.default_rng([seed, 0xFA17, index])
        targets: dict[DeviceKind, Index] = {}
        if spec.devices is not None:
            for device_id in spec.devices:
                g = fleet.by_id.get(device_id)
                if g is None:
                    raise ResolveError(
                        f"{where}: device {device_id!r} is not in this fleet of {len(fleet)}"
                    )
                kind = fleet.devices[g].kind
                if kind not in spec.target_kinds():
                    raise ResolveError(
                        f"{where}: {device_id} is a {kind}, this fault hits "
                        f"{', '.join(spec.target_kinds())}"
                    )
                local = int(np.searchsorted(kinds.slots[kind], g))
                targets[kind] = np.append(targets.get(kind, np.empty(0, np.int64)), local)
        else:
            wards = spec.target_wards
            for kind in spec.target_kinds():
                slots = kinds.slots[kind]
                if wards is not None:
                    in_wards = np.array([fleet.devices[g].ward in wards for g in slots], dtype=bool)
                    candidates = np.flatnonzero(in_wards)
                else:
                    candidates = np.arange(len(slots))
                if len(candidates) == 0:
                    continue
                if spec.count is not None:
                    k = min(spec.count, len(candidates))
                else:
                    share = spec.share if spec.share is not None else spec.default_share
                    k = 1 if share is None else max(1, round(share * len(candidates)))
                targets[kind] = np.sort(rng.choice(candidates, size=k, replace=False))
        if not any(len(t) for t in targets.values()):
            log.warning(
                "%s: no devices of that kind in %s; skipped",
                where,
                spec.target_wards or "the fleet",
            )
            continue
        fault = ActiveFault(
            index=index,
            spec=spec,
            start_ms=fault_start,
            end_ms=min(end_ms, fault_start + round(spec.duration * 1000)),
            targets=targets,
            severity={k: rng.uniform(0.3, 1.0, len(t)) for k, t in targets.items()},
            rng=np.random.default_rng([seed, 0xFA17, index, 1]),
        )
        if isinstance(spec, CableCut):
            fault.downstream = _downstream(fleet, kinds, targets[DeviceKind.CABLE_SEGMENT])
        placed.append(fault)
    return placed


def _downstream(fleet: Fleet, kinds: KindIndex, cut: Index) -> Index:
    slots = kinds.slots[DeviceKind.CABLE_SEGMENT]
    cut_at: dict[str, int] = {}
    for local in cut.tolist():
        info = fleet.devices[slots[local]]
        assert info.route is not None
        assert info.position is not None
        cut_at[info.route] = min(cut_at.get(info.route, info.position), info.position)
    cut_set = set(cut.tolist())
    out = []
    for local, g in enumerate(slots.tolist()):
        info = fleet.devices[g]
        if (
            info.route in cut_at
            and info.position is not None
            and info.position > cut_at[info.route]
            and local not in cut_set
        ):
            out.append(local)
    return np.array(out, dtype=np.int64)


def _flood_envelope(progress: float) -> float:
    """0 → 1 over the first 30 % of the window, 1, then back to 0 over the last 30 %."""
    return float(np.clip(min(progress, 1.0 - progress) / FLOOD_RAMP, 0.0, 1.0))


class FaultEngine:
    """Applies placed faults step by step and keeps the ground-truth labels."""

    def __init__(
        self, faults: list[ActiveFault], fleet: Fleet, scenario_name: str, end_ms: int
    ) -> None:
        self.faults = faults
        self.fleet = fleet
        self.scenario_name = scenario_name
        self.end_ms = end_ms
        self.kinds = KindIndex.of(fleet)
        self.n = {kind: len(slots) for kind, slots in self.kinds.slots.items()}
        self._death_labels: list[Label] = []
        self._dead_since: dict[int, tuple[int, str]] = {}
        self._reached_ms = -1  # the last step recorded (``record_fans``)

    # -- physics ---------------------------------------------------------------------
    def cabinet_conditions(self, t_ms: float) -> CabinetConditions:
        cond = CabinetConditions.normal(self.n[DeviceKind.CABINET])
        for f in self.faults:
            slots = f.targets.get(DeviceKind.CABINET)
            if slots is None or not f.active(t_ms):
                continue
            if isinstance(f.spec, FanFailure):
                cond.fan_failed[slots] = True
            elif isinstance(f.spec, MainsOutage):
                cond.mains_lost[slots] = True
            elif isinstance(f.spec, DoorIntrusion):
                cond.door_open[slots] = True
            elif isinstance(f.spec, Flooding):
                depth = f.spec.peak_mm * _flood_envelope(f.progress(t_ms))
                cond.water_mm[slots] = np.maximum(
                    cond.water_mm[slots], depth * f.severity[DeviceKind.CABINET]
                )
        return cond

    def segment_conditions(self, t_ms: float) -> SegmentConditions:
        cond = SegmentConditions.normal(self.n[DeviceKind.CABLE_SEGMENT])
        for f in self.faults:
            slots = f.targets.get(DeviceKind.CABLE_SEGMENT)
            if slots is None or not f.active(t_ms):
                continue
            if isinstance(f.spec, CableCut):
                since = (t_ms - f.start_ms) / 1000.0
                cond.cut_s[slots] = np.fmax(cond.cut_s[slots], since)  # fmax skips NaN
                cond.dark[f.downstream] = True
            elif isinstance(f.spec, Flooding):
                level = _flood_envelope(f.progress(t_ms)) * f.severity[DeviceKind.CABLE_SEGMENT]
                cond.flood[slots] = np.maximum(cond.flood[slots], level)
            elif isinstance(f.spec, FibreDegradation):
                cond.extra_loss_db[slots] += f.spec.rise_db * f.progress(t_ms)
        return cond

    # -- sensors -----------------------------------------------------------------------
    def distort(self, kind: DeviceKind, t_ms: float, metrics: dict[str, Array | Mask]) -> None:
        """Apply stuck/spike/noise faults to this step's readings of ``kind`` in place."""
        for f in self.faults:
            spec = f.spec
            if not isinstance(spec, StuckSensor | Spikes | Noise):
                continue
            slots = f.targets.get(kind)
            if slots is None or not f.active(t_ms):
                continue
            values = metrics[spec.metric]
            catalogue = CATALOGUE[kind][spec.metric]
            span = catalogue.valid_max - catalogue.valid_min
            if isinstance(spec, StuckSensor):
                if f.stuck_values is None:
                    f.stuck_values = values[slots].astype(np.float64)
                values[slots] = f.stuck_values
            elif isinstance(spec, Spikes):
                hit = f.rng.random(len(slots)) < spec.probability
                sign = np.where(f.rng.random(len(slots)) < 0.5, -1.0, 1.0)
                magnitude = spec.magnitude if spec.magnitude is not None else span / 4
                bumped = values[slots] + hit * sign * magnitude
                # A spike that would leave the valid range goes the other way instead.
                over = (bumped > catalogue.valid_max) | (bumped < catalogue.valid_min)
                bumped = np.where(over, values[slots] - hit * sign * magnitude, bumped)
                values[slots] = np.clip(bumped, catalogue.valid_min, catalogue.valid_max)
            else:
                sigma = spec.sigma if spec.sigma is not None else span * 0.03
                noisy = values[slots] + f.rng.normal(0.0, sigma, len(slots))
                values[slots] = np.clip(noisy, catalogue.valid_min, catalogue.valid_max)

    # -- delivery ----------------------------------------------------------------------
    def delivery(self, kind: DeviceKind, t_ms: float) -> tuple[Mask, Mask, npt.NDArray[np.int64]]:
        """Per slot: (silent: produces nothing, lost: report lost in transit, clock skew ms)."""
        n = self.n[kind]
        silent = np.zeros(n, bool)
        lost = np.zeros(n, bool)
        skew = np.zeros(n, np.int64)
        for f in self.faults:
            slots = f.targets.get(kind)
            if slots is None or not f.active(t_ms):
                continue
            if isinstance(f.spec, Silent):
                silent[slots] = True
            elif isinstance(f.spec, Dropout):
                lost[slots] |= f.rng.random(len(slots)) < f.spec.probability
            elif isinstance(f.spec, ClockSkew):
                skew[slots] += round(f.spec.offset * 1000)
        return silent, lost, skew

    # -- labels ------------------------------------------------------------------------
    def record_death(self, device: int, t_ms: int) -> None:
        """A cabinet ran its battery flat: label it device-wide until it boots again."""
        cause = "mains_outage"
        self._dead_since[device] = (t_ms, cause)

    def record_fans(self, wanted: Mask, t_ms: int, until_ms: int) -> None:
        """The cabinets whose controller wants the fan in the step from ``t_ms`` to
        ``until_ms`` (``Step.fan_wanted``): a failed fan is labelled from when it is first
        wanted. At night in the cool season a cabinet's fan may never run: its failure
        then changes nothing any sensor sees, and a label of it would count as a miss what
        no detector can catch."""
        self._reached_ms = until_ms
        for f in self.faults:
            slots = f.targets.get(DeviceKind.CABINET)
            if not isinstance(f.spec, FanFailure) or slots is None or not f.active(t_ms):
                continue
            if f.wanted_ms is None:
                f.wanted_ms = np.full(len(slots), np.nan)
            first = np.isnan(f.wanted_ms) & wanted[slots]
            f.wanted_ms[first] = t_ms

    def _fan_start(self, f: ActiveFault, target: int) -> int | None:
        """When fan failure ``f`` shows on its ``target``-th cabinet: when its fan was first
        wanted; the fault's start while that is not simulated yet; None for a fault whose
        window went by without the fan ever being wanted."""
        when = np.nan if f.wanted_ms is None else float(f.wanted_ms[target])
        if not np.isnan(when):
            return int(when)
        return None if self._reached_ms >= min(f.end_ms, self.end_ms) else f.start_ms

    def record_boot(self, device: int, t_ms: int) -> None:
        since = self._dead_since.pop(device, None)
        if since is not None:
            self._death_labels.append(self._label(device, "*", since[1], since[0], t_ms))

    def _label(self, device: int, metric: str, fault: str, start: int, end: int) -> Label:
        info = self.fleet.devices[device]
        return Label(
            info.id, info.ward, metric, fault, start, min(end, self.end_ms), self.scenario_name
        )

    def labels(self) -> list[Label]:
        """Every device x metric each fault touched, in time order (deaths so far included)."""
        rows: list[Label] = []
        for f in self.faults:
            spec = f.spec
            for kind, slots in f.targets.items():
                for target, local in enumerate(slots.tolist()):
                    g = int(self.kinds.slots[kind][local])
                    start = f.start_ms
                    if isinstance(spec, FanFailure):
                        shows = self._fan_start(f, target)
                        if shows is None:
                            continue  # the fan was never wanted: nothing to see
                        start = shows
                    for metric in spec.metrics(kind):
                        rows.append(
                            self._label(
                                g,
                                metric,
                                spec.fault,
                                start,
                                f.end_ms + _linger_ms(spec, metric),
                            )
                        )
            if isinstance(spec, CableCut):
                for local in f.downstream.tolist():
                    g = int(self.kinds.slots[DeviceKind.CABLE_SEGMENT][local])
                    rows.append(self._label(g, "signal", spec.fault, f.start_ms, f.end_ms))
        rows.extend(self._death_labels)
        for device, (since, cause) in self._dead_since.items():
            rows.append(self._label(device, "*", cause, since, self.end_ms))
        merged: dict[tuple[str, str, str, int], Label] = {}
        for row in rows:  # overlapping faults of one kind: keep one row, widest end
            key = (row.device, row.metric, row.fault, row.start_ms)
            old = merged.get(key)
            if old is None or old.end_ms < row.end_ms:
                merged[key] = row
        return sorted(merged.values(), key=lambda r: (r.start_ms, r.device, r.metric))


def _linger_ms(spec: FaultSpec, metric: str) -> int:
    """How long after its end a fault still shows in ``metric`` (slow physics)."""
    if isinstance(spec, FanFailure):
        return round(RECOVERY_S * 1000)
    if isinstance(spec, MainsOutage) and metric in ("battery_soc", "battery_voltage"):
        return round(RECHARGE_HOURS_MAX * 3_600_000)
    return 0


__all__ = ["ActiveFault", "FaultEngine", "ResolveError", "resolve"]
