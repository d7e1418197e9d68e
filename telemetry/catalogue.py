"""The metric catalogue: every metric each device kind reports, with its physics and limits.

``valid_*`` is the physically possible range: a reading outside it is a broken sensor or a
forged message and is rejected at decode. ``warn_*``/``crit_*`` are the default alarm
limits the detector's physical-limits rule starts from. ``period_s`` is how often a healthy
device reports the metric; liveness and dropout detection derive their timeouts from it.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from telemetry.kinds import DeviceKind

DType = Literal["float", "bool"]


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric of one device kind."""

    id: int
    """Stable small integer, unique across kinds; the detector's series keys use it."""
    kind: DeviceKind
    name: str
    unit: str
    dtype: DType
    valid_min: float
    valid_max: float
    description: str
    period_s: float = 60.0
    warn_low: float | None = None
    warn_high: float | None = None
    crit_low: float | None = None
    crit_high: float | None = None
    off_value: float | None = None
    """What the metric reads while its equipment is switched off by design (a fan its
    controller stopped): a state, not an anomaly."""
    accuracy: float | None = None
    """The sensor's stated accuracy in the metric's unit: a change smaller than this is
    not told from the sensor's own error, however quiet its readings have been."""

    def is_valid(self, value: float) -> bool:
        """Whether ``value`` is physically possible for this metric."""
        return self.valid_min <= value <= self.valid_max


_C = DeviceKind.CABINET
_S = DeviceKind.CABLE_SEGMENT

_ALL: tuple[Metric, ...] = (
    # Street cabinets: a 48 V DC plant fed from 230 V mains with a VRLA battery string.
    Metric(
        1,
        _C,
        "temp_inside",
        "°C",
        "float",
        -20,
        95,
        "air temperature inside the cabinet",
        warn_high=45,
        crit_high=55,
        accuracy=0.5,
    ),
    Metric(
        2,
        _C,
        "temp_outside",
        "°C",
        "float",
        -10,
        60,
        "ambient air temperature at the cabinet",
        accuracy=0.5,
    ),
    Metric(
        3,
        _C,
        "humidity",
        "%RH",
        "float",
        0,
        100,
        "relative humidity inside the cabinet",
        warn_high=85,
        crit_high=95,
        accuracy=2.0,
    ),
    Metric(
        4,
        _C,
        "door_open",
        "bool",
        "bool",
        0,
        1,
        "door contact: true while the door is open",
        warn_high=1,
    ),
    Metric(
        5,
        _C,
        "mains_voltage",
        "V",
        "float",
        0,
        300,
        "mains voltage (0 when the feed is lost)",
        warn_low=198,
        warn_high=250,
        crit_low=180,
        crit_high=265,
    ),
    Metric(
        6,
        _C,
        "on_battery",
        "bool",
        "bool",
        0,
        1,
        "true while the load runs from the battery",
        warn_high=1,
    ),
    Metric(
        7,
        _C,
        "battery_soc",
        "%",
        "float",
        0,
        100,
        "battery state of charge",
        warn_low=40,
        crit_low=20,
    ),
    Metric(
        8,
        _C,
        "battery_voltage",
        "V",
        "float",
        0,
        60,
        "battery string voltage (48 V nominal)",
        warn_low=46,
        crit_low=44,
    ),
    Metric(9, _C, "fan_rpm", "rpm", "float", 0, 8000, "cooling fan speed", off_value=0),
    Metric(
        10,
        _C,
        "water_level",
        "mm",
        "float",
        0,
        1000,
        "water above the cabinet plinth floor",
        warn_high=30,
        crit_high=100,
    ),
    Metric(
        11,
        _C,
        "power_draw",
        "W",
        "float",
        0,
        5000,
        "power drawn by the cabinet's equipment",
        warn_high=1800,
        crit_high=2400,
    ),
    # Underground cable segments: a sensor node in a duct on a route.
    Metric(
        21,
        _S,
        "temp",
        "°C",
        "float",
        -10,
        90,
        "temperature in the duct at the node",
        warn_high=50,
        crit_high=65,
    ),
    Metric(
        22,
        _S,
        "moisture",
        "%",
        "float",
        0,
        100,
        "moisture in the duct (water ingress)",
        warn_high=60,
        crit_high=85,
        accuracy=2.0,
    ),
    Metric(
        23,
        _S,
        "strain",
        "µε",
        "float",
        0,
        10000,
        "mechanical strain on the cable",
        warn_high=1500,
        crit_high=3000,
    ),
    Metric(
        24,
        _S,
        "optical_loss",
        "dB",
        "float",
        0,
        60,
        "optical loss measured over the segment",
        warn_high=3,
        crit_high=6,
    ),
    Metric(
        25,
        _S,
        "signal",
        "bool",
        "bool",
        0,
        1,
        "true while light arrives through the segment",
        crit_low=1,
    ),
)

CATALOGUE: Mapping[DeviceKind, Mapping[str, Metric]] = MappingProxyType(
    {kind: MappingProxyType({m.name: m for m in _ALL if m.kind is kind}) for kind in DeviceKind}
)
"""Metrics by kind, then by name."""

METRICS_BY_ID: Mapping[int, Metric] = MappingProxyType({m.id: m for m in _ALL})
"""Metrics by their stable integer id."""

assert len(METRICS_BY_ID) == len(_ALL), "metric ids must be unique"


def metric(kind: DeviceKind | str, name: str) -> Metric:
    """The catalogue entry for ``name`` on ``kind``; ``KeyError`` naming both if unknown."""
    try:
        return CATALOGUE[DeviceKind(kind)][name]
    except (KeyError, ValueError):
        raise KeyError(f"no metric {name!r} on device kind {kind!r}") from None


def metric_id(kind: DeviceKind | str, name: str) -> int:
    """The stable integer id of a metric."""
    return metric(kind, name).id
