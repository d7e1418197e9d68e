"""The generation core: a fleet, a scenario and a clock in; messages in time order out.

``Simulation`` knows nothing about MQTT or files; sinks (``simulators.sinks``) deliver
what it yields, and a pacer (``simulators.runner``) decides when. Each device reports
once per period at its own phase within the period (devices are not synchronised), so
messages come out spread evenly in device time.
"""

import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from simulators.climate import Climate
from simulators.fleet import Fleet
from simulators.injection import FaultEngine, resolve
from simulators.labels import Label
from simulators.physics import CabinetModel, SegmentModel, Step
from simulators.scenario import QUIET, Scenario
from telemetry import (
    Channel,
    DeviceKind,
    Event,
    EventType,
    Report,
    Status,
    Topic,
    encode,
)

log = logging.getLogger(__name__)

_DECIMALS = 2
_NO_END = 2**62
"""Horizon of an endless run (ms): later than any fault can start."""


@dataclass(frozen=True, slots=True)
class SimMessage:
    """One message a device sends, at device time ``due_ms`` (true time, before skew)."""

    topic: str
    payload: bytes
    due_ms: int
    device: int
    """Index of the device in the fleet."""
    retain: bool = False
    will: bool = False
    """An ``offline`` status standing for the device's death: with a connection per
    device the broker publishes it as the Last Will instead."""


def offline_will(info_kind: DeviceKind, device_id: str) -> Status:
    """The Last Will a device registers when it connects (no ts: it is fixed in advance)."""
    return Status(v=1, device=device_id, kind=info_kind, state="offline", reason="last_will")


class Simulation:
    """Seeded messages of a whole fleet over ``duration_s`` from ``start_ms``.

    Parameters
    ----------
    fleet : the devices.
    scenario : faults to inject (none by default).
    start_ms : simulation start, ms since the epoch (device time).
    duration_s : how long to simulate; reports fall in ``[start, start + duration)``.
        ``None`` runs without end (real-time demos; stop by no longer iterating).
    period_s : reporting period of every device.
    seed : drives physics noise, weather and fault placement (the fleet has its own seed).
    lead_in_s : quiet time before the scenario's clock starts: fault offsets count from
        ``start + lead_in`` (a long fault-free history for detectors to learn from).
    """

    def __init__(
        self,
        fleet: Fleet,
        scenario: Scenario = QUIET,
        *,
        start_ms: int,
        duration_s: float | None,
        period_s: float = 60.0,
        seed: int = 0,
        lead_in_s: float = 0.0,
    ) -> None:
        if period_s <= 0:
            raise ValueError(f"period must be positive, got {period_s}")
        if duration_s is not None and duration_s <= 0:
            raise ValueError(f"duration must be positive, got {duration_s}")
        if lead_in_s < 0:
            raise ValueError(f"lead-in must not be negative, got {lead_in_s}")
        self.fleet = fleet
        self.scenario = scenario
        self.start_ms = start_ms
        self.period_ms = max(1, round(period_s * 1000))
        self.n_ticks: int | None = None
        self.end_ms: int | None = None
        if duration_s is not None:
            self.n_ticks = math.ceil(duration_s * 1000 / self.period_ms)
            self.end_ms = start_ms + round(duration_s * 1000)
        horizon = self.end_ms if self.end_ms is not None else _NO_END
        self.seed = seed
        rng = np.random.default_rng([seed, 0x5EED])
        self.phase_ms = rng.integers(0, self.period_ms, len(fleet)).astype(np.int64)
        self._order = np.argsort(self.phase_ms, kind="stable")

        ward_pos = {w.codename: i for i, w in enumerate(fleet.wards)}
        self._kinds = {kind: fleet.indices(kind) for kind in DeviceKind}
        ward_of = np.array([ward_pos[d.ward] for d in fleet.devices], dtype=np.int64)
        cab = self._kinds[DeviceKind.CABINET]
        seg = self._kinds[DeviceKind.CABLE_SEGMENT]
        self.climate = Climate(np.array([w.urban for w in fleet.wards], bool), start_ms, seed)
        self.cabinets = CabinetModel(ward_of[cab], np.array(fleet.urban, bool)[cab], seed)
        self.cabinets.spin_up(start_ms, self.climate)
        self.segments = SegmentModel(ward_of[seg], seed, start_ms)
        self.lead_in_ms = round(lead_in_s * 1000)
        self.faults = resolve(scenario, fleet, start_ms + self.lead_in_ms, horizon, seed)
        self.engine = FaultEngine(self.faults, fleet, scenario.name, horizon)

        self._local = np.zeros(len(fleet), np.int64)
        for slots in self._kinds.values():
            self._local[slots] = np.arange(len(slots))
        self._topics = {
            channel: [Topic(d.ward, d.kind, d.id, channel).format() for d in fleet.devices]
            for channel in Channel
        }
        self._seq = np.zeros(len(fleet), np.int64)
        self._event_seq = np.zeros(len(fleet), np.int64)
        self._was_alive = np.ones(len(cab), bool)
        self._reached_ms = start_ms
        """The end of the last period simulated: labels stop there."""

    def labels(self) -> list[Label]:
        """Ground truth of the run's faults as resolved (deaths are known once they
        happen, and when a failed fan would have run): for a whole run, every fault it
        injects that a sensor could see (a fan failure whose fan was never wanted in its
        window is not labelled)."""
        return self.engine.labels()

    def labels_so_far(self) -> list[Label]:
        """The labels of the time simulated so far: a run stopped early labels neither
        the faults still due nor the rest of the ones under way."""
        reached = self._reached_ms
        return [
            label if label.end_ms <= reached else replace(label, end_ms=reached)
            for label in self.engine.labels()
            if label.start_ms < reached
        ]

    def __iter__(self) -> Iterator[SimMessage]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[SimMessage]]:
        """Messages in time order, one list per period.

        Each device announces itself (retained ``online`` status with its DeviceInfo) just
        before its first report, so a large fleet comes up spread over the first period
        instead of in one burst.
        """
        ticks = range(self.n_ticks) if self.n_ticks is not None else itertools.count()
        for tick in ticks:
            self._reached_ms = self.start_ms + (tick + 1) * self.period_ms
            if self.end_ms is None:  # endless: labels end where the run has got to
                self.engine.end_ms = self._reached_ms
            yield self._tick(tick)

    def _online(self, g: int, ts_ms: int) -> SimMessage:
        info = self.fleet.devices[g]
        status = Status(v=1, device=info.id, kind=info.kind, state="online", ts=ts_ms, info=info)
        return SimMessage(self._topics[Channel.STATUS][g], encode(status), ts_ms, g, retain=True)

    def _tick(self, tick: int) -> list[SimMessage]:
        t_ms = self.start_ms + tick * self.period_ms
        dt_s = self.period_ms / 1000.0
        weather = self.climate.at(t_ms)
        steps: dict[DeviceKind, Step] = {
            DeviceKind.CABINET: self.cabinets.step(
                t_ms, dt_s, weather, self.engine.cabinet_conditions(t_ms)
            ),
            DeviceKind.CABLE_SEGMENT: self.segments.step(
                t_ms, weather, self.engine.segment_conditions(t_ms)
            ),
        }
        rows: dict[DeviceKind, list[dict[str, float | bool]]] = {}
        delivery = {}
        events: dict[DeviceKind, dict[int, list[EventType]]] = {}
        for kind, step in steps.items():
            self.engine.distort(kind, t_ms, step.metrics)
            names = list(step.metrics)
            columns = [
                np.round(v, _DECIMALS).tolist() if v.dtype != np.bool_ else v.tolist()
                for v in step.metrics.values()
            ]
            rows[kind] = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
            delivery[kind] = self.engine.delivery(kind, t_ms)
            per_device: dict[int, list[EventType]] = {}
            for name, mask in step.events.items():
                for local in np.flatnonzero(mask).tolist():
                    per_device.setdefault(local, []).append(EventType(name))
            events[kind] = per_device

        wanted = steps[DeviceKind.CABINET].fan_wanted
        if wanted is not None:
            self.engine.record_fans(wanted, t_ms, t_ms + self.period_ms)
        died = steps[DeviceKind.CABINET].events["battery_empty"]
        cab_alive = steps[DeviceKind.CABINET].alive
        out: list[SimMessage] = []
        for g in self._order.tolist():
            info = self.fleet.devices[g]
            kind = info.kind
            local = int(self._local[g])
            due = t_ms + int(self.phase_ms[g])
            dying = kind is DeviceKind.CABINET and bool(died[local])
            alive = kind is not DeviceKind.CABINET or bool(cab_alive[local])
            if tick == 0:
                out.append(self._online(g, due))
            elif kind is DeviceKind.CABINET and alive and not self._was_alive[local]:
                self.engine.record_boot(g, due)
                self._seq[g] = 0
                self._event_seq[g] = 0
                out.append(self._online(g, due))
            if not alive and not dying:
                continue
            silent, lost, skew = delivery[kind]
            if silent[local]:
                continue
            ts = due + int(skew[local])
            for event in events[kind].get(local, []):
                payload = encode(
                    Event(
                        v=1,
                        device=info.id,
                        kind=kind,
                        ts=ts,
                        seq=int(self._event_seq[g]),
                        event=event,
                    )
                )
                self._event_seq[g] += 1
                out.append(SimMessage(self._topics[Channel.EVENT][g], payload, due, g))
            seq = int(self._seq[g])
            self._seq[g] += 1
            if not lost[local]:
                report = Report(
                    v=1, device=info.id, kind=kind, ts=ts, seq=seq, metrics=rows[kind][local]
                )
                out.append(SimMessage(self._topics[Channel.TELEMETRY][g], encode(report), due, g))
            if dying:
                self.engine.record_death(g, due)
                out.append(
                    SimMessage(
                        self._topics[Channel.STATUS][g],
                        encode(offline_will(kind, info.id)),
                        due,
                        g,
                        retain=True,
                        will=True,
                    )
                )
        self._was_alive = cab_alive
        return out
