"""How a run did against the ground truth of its simulated city: faults injected, caught,
time to alert, false alarms. ``citywatch demo`` ends with it; ``benchmarks/
pipeline_recall.py`` prints it for other seeds and speeds.

A fault a crew must hear about (a fan, mains, flood, cut or fibre fault: sensor faults
and dropouts are the NOC's) is *caught* when its device — or, for an area alert, its ward
— has a *raised* alert (one that reached the crews, not dropped while pending) between
the fault's start and its end plus ``grace_ms``. The time to alert is from the fault's
start to that alert's raising, both on device time. A *false alarm* is a raised alert
on a device, or an area alert in a ward, that no injected fault of any kind touches.
"""

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulators.labels import Label

CREW_FAULTS = frozenset(
    {"fan_failure", "mains_outage", "flooding", "cable_cut", "fibre_degradation"}
)


@dataclass(frozen=True, slots=True)
class Scorecard:
    faults: int
    """Crew faults injected (one per device and fault kind)."""
    caught: int
    delays_s: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    """``device (fault)`` of each one missed."""
    false_alarms: list[str] = field(default_factory=list)
    """``device or ward: type`` of each raised alert no fault touches."""

    @property
    def median_delay_s(self) -> float | None:
        return statistics.median(self.delays_s) if self.delays_s else None

    def lines(self) -> list[str]:
        median = self.median_delay_s
        return [
            f"faults injected {self.faults}, caught {self.caught}"
            + (f" (missed: {', '.join(self.missed)})" if self.missed else ""),
            "median time to alert "
            + ("n/a" if median is None else f"{median / 60:.1f} min (device time)"),
            f"false alarms {len(self.false_alarms)}"
            + (f": {', '.join(self.false_alarms[:8])}" if self.false_alarms else ""),
        ]


def score(
    labels: Sequence[Label], alerts: Sequence[Mapping[str, Any]], grace_ms: int = 30 * 60_000
) -> Scorecard:
    """The scorecard of ``alerts`` (the API's alert objects) against ``labels``."""
    raised = [a for a in alerts if a.get("raised_at") is not None]
    crew: dict[tuple[str, str], list[Label]] = {}
    for label in labels:
        if label.fault in CREW_FAULTS:
            crew.setdefault((label.device, label.fault), []).append(label)
    delays, missed = [], []
    for (device, fault), labs in sorted(crew.items()):
        start = min(lab.start_ms for lab in labs)
        end = max(lab.end_ms for lab in labs) + grace_ms
        ward = labs[0].ward
        hits = [
            int(a["raised_at"])
            for a in raised
            if (a["device"] == device or (not a["device"] and a["ward"] == ward))
            and start <= int(a["raised_at"]) <= end
        ]
        if hits:
            delays.append(max(0, min(hits) - start) / 1000)
        else:
            missed.append(f"{device} ({fault})")
    touched_devices = {lab.device for lab in labels}
    touched_wards = {lab.ward for lab in labels}
    false_alarms = [
        f"{a['device'] or a['ward']}: {a['type']}"
        for a in raised
        if (a["device"] and a["device"] not in touched_devices)
        or (not a["device"] and a["ward"] not in touched_wards)
    ]
    return Scorecard(len(crew), len(delays), delays, missed, false_alarms)


@dataclass(frozen=True, slots=True)
class CrewCards:
    """What a crew's page shows: one card per open, raised alert that is not grouped
    under an incident (an incident's root stands for its children)."""

    cards: int
    incidents: int
    """Cards that root an incident (their children folded in)."""
    max_per_device: int
    busiest: str
    """The device (or ward) with the most cards."""

    def line(self) -> str:
        return (
            f"crew cards {self.cards} ({self.incidents} of them incidents); at most "
            f"{self.max_per_device} for one device ({self.busiest or '-'})"
        )


def crew_cards(alerts: Sequence[Mapping[str, Any]]) -> CrewCards:
    """The crew cards of the API's alert objects, counted as the crew page shows them
    (``api/static/crew.js``, ``cards``): open raised alerts; an incident's children fold
    into its root, a device's other alerts into one card (which alert leads it does not
    change the count)."""
    shown = [
        a
        for a in alerts
        if a.get("raised_at") is not None
        and a["state"] != "cleared"
        and (a.get("incident") is None or a.get("incident_root"))
    ]
    rank = {"critical": 0, "major": 1, "minor": 2, "warning": 3}
    first: dict[str, Mapping[str, Any]] = {}
    cards = []
    for a in sorted(shown, key=lambda a: (rank.get(a["severity"], 9), -a["opened_at"])):
        if a["device"] and a["device"] in first:
            continue
        if a["device"]:
            first[a["device"]] = a
        cards.append(a)
    per: dict[str, int] = {}
    for a in cards:
        owner = a["device"] or a["ward"]
        per[owner] = per.get(owner, 0) + 1
    busiest = max(per, key=lambda k: per[k], default="")
    return CrewCards(
        len(cards), sum(1 for a in cards if a.get("incident_root")), per.get(busiest, 0), busiest
    )
