"""Fault kinds a scenario can inject, as validated specs (pydantic).

A spec says what happens (``kind`` and its parameters), when (``at`` and ``duration``,
offsets from the simulation start such as ``"25m"``) and to whom: a ward or wards by
codename, a ``share`` of (or ``count`` of) the devices of the kind the fault hits there
(the whole city without a ward), or explicit ``devices`` ids. Targets placed by ward and
share scale with the fleet size.
"""

import re
from abc import abstractmethod
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from typing_extensions import override

from telemetry import CATALOGUE, DeviceKind

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from ``"90s"``, ``"25m"``, ``"1h30m"``, ``"-2m"`` or a plain number of seconds.

    >>> parse_duration("1h30m"), parse_duration("-90s"), parse_duration(12)
    (5400.0, -90.0, 12.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '25m', got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like '25m', got {value!r}")
    text = value.strip().replace(" ", "")
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise ValueError(f"bad duration {value!r}: use a number with a unit s, m or h, e.g. '25m'")
    return sign * total


Seconds = Annotated[float, BeforeValidator(parse_duration)]


class FaultKind(StrEnum):
    FAN_FAILURE = "fan_failure"
    MAINS_OUTAGE = "mains_outage"
    FLOODING = "flooding"
    DOOR_INTRUSION = "door_intrusion"
    CABLE_CUT = "cable_cut"
    FIBRE_DEGRADATION = "fibre_degradation"
    STUCK_SENSOR = "stuck_sensor"
    SPIKES = "spikes"
    NOISE = "noise"
    DROPOUT = "dropout"
    CLOCK_SKEW = "clock_skew"
    SILENT = "silent"


class FaultSpec(BaseModel):
    """What every fault has: a time window and a target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: Seconds = Field(description="offset from the simulation start, e.g. '25m'")
    duration: Seconds
    ward: str | None = None
    wards: list[str] | None = None
    share: float | None = Field(None, gt=0.0, le=1.0)
    count: int | None = Field(None, ge=1)
    devices: list[str] | None = None

    default_share: ClassVar[float | None] = None
    """Area faults hit every device of the area unless told otherwise; others hit one."""

    @field_validator("at")
    @classmethod
    def _at_not_negative(cls, v: float) -> float:
        if v < 0:
            raise ValueError(f"must not be negative (got {v:g} s)")
        return v

    @field_validator("duration")
    @classmethod
    def _duration_positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"must be positive (got {v:g} s)")
        return v

    @field_validator("ward")
    @classmethod
    def _known_ward(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            _check_ward(v, info)
        return v

    @field_validator("wards")
    @classmethod
    def _known_wards(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        for ward in v or []:
            _check_ward(ward, info)
        return v

    @model_validator(mode="after")
    def _one_way_to_target(self) -> "FaultSpec":
        if self.share is not None and self.count is not None:
            raise ValueError("give either share or count, not both")
        if self.ward is not None and self.wards is not None:
            raise ValueError("give either ward or wards, not both")
        if self.devices is not None and (
            self.ward or self.wards or self.share is not None or self.count is not None
        ):
            raise ValueError("devices names the targets itself: drop ward/wards/share/count")
        if self.devices is not None and not self.devices:
            raise ValueError("devices is empty")
        return self

    @property
    def fault(self) -> FaultKind:
        return FaultKind(getattr(self, "kind"))  # noqa: B009 - every subclass defines kind

    @property
    def target_wards(self) -> list[str] | None:
        if self.ward is not None:
            return [self.ward]
        return self.wards

    def target_kinds(self) -> tuple[DeviceKind, ...]:
        """Device kinds this fault hits."""
        return (DeviceKind.CABINET,)

    @abstractmethod
    def metrics(self, kind: DeviceKind) -> tuple[str, ...]:
        """Metrics the fault changes on a device of ``kind`` (``*``: the whole device)."""


def _check_ward(ward: str, info: ValidationInfo) -> None:
    known: Any = (info.context or {}).get("wards")
    if known is not None and ward not in known:
        close = sorted(w for w in known if ward.rsplit("_", maxsplit=1)[-1] in w)[:3]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown ward {ward!r}{hint}; use a codename like 'phuong_hoan_kiem'")


class FanFailure(FaultSpec):
    """The cabinet fan stops: the inside temperature climbs with the load.

    The heat also dries the cabinet air and lowers the temperature-compensated float
    voltage of the battery charger, so those are labelled too.
    """

    kind: Literal["fan_failure"]

    @override
    def metrics(self, kind: DeviceKind) -> tuple[str, ...]:
        return ("fan_rpm", "temp_inside", "humidity", "battery_voltage")


class MainsOutage(FaultSpec):
    """The mains feed of an area drops: cabinets run on battery and die when it is empty."""

    kind: Literal["mains_outage"]
    default_share: ClassVar[float | None] = 1.0

    @override
    def metrics(self, kind: DeviceKind) -> tuple[str, ...]:
        return ("mains_voltage", "on_battery", "battery_soc", "battery_voltage")


class Flooding(FaultSpec):
    """Street flooding: water rises in cabinets and in the ducts, then recedes."""

    kind: Literal["flooding"]
    default_share: ClassVar[float | None] = 1.0
    peak_mm: float = Field(150.0, gt=0.0, le=1000.0)

    def target_kinds(self) -> tuple[DeviceKind, ...]:
        return (DeviceKind.CABINET, DeviceKind.CABLE_SEGMENT)

    @override
    def metrics(self, kind: DeviceKind) -> tuple[str, ...]:
        if kind is DeviceKind.CABINET:
            return ("water_level", "humidity")
        return ("moisture",)


class DoorIntrusion(FaultSpec):
    """A cabinet door opened (best placed at night) and left open for the duration."""

    kind: Literal["door_intrusion"]

    @override
    def metrics(self, kind: DeviceKind) -> tuple[str, ...]:
        return ("door_open",)


class CableCut(FaultSpec):
    """Roadworks cut a cable: signal lost here and downstream, strain spike, loss jump."""

    kind: Literal["cable_cut"]

    def target_kinds(self) -> tuple[DeviceKind, ...]:
        return (DeviceKind.CABLE_SEGMENT,)

    @override
    def metrics(self, kind: DeviceKind) -> tuple[str, ...]:
        return ("signal", "strain", "optical_loss")


class FibreDegradation(FaultSpec):
    """A fibre slowly degrades (bend, water in a splice): optical loss creeps up."""

    kind: Literal["fibre_degradation"]
    rise_db: float = Field(4.0, gt=0.0, le=40.0)

    def target_kinds(self) -> tuple[DeviceKind, ...]:
        return (DeviceKind.CABLE_SEGMENT,)

    @override
    def metrics(self, kind: DeviceKind) -> tuple[str, ...]:
        return ("optical_loss",)


class _DeviceFault(FaultSpec):
    """A fault of the sensor or the device itself, on either kind."""

    device_kind: DeviceKind = DeviceKind.CABINET

    def target_kinds(self) -> tuple[DeviceKind, ...]:
        return (self.device_kind,)

    @override
    def metrics(self, kind: DeviceKind) -> tuple[str, ...]:
        return ("*",)


class _SensorFault(_DeviceFault):
    metric: str
    floats_only: ClassVar[bool] = True

    @model_validator(mode="after")
    def _known_metric(self) -> "_SensorFault":
        spec = CATALOGUE[self.device_kind].get(self.metric)
        if spec is None:
            known = ", ".join(CATALOGUE[self.device_kind])
            raise ValueError(f"{self.device_kind} has no metric {self.metric!r} (it has {known})")
        if self.floats_only and spec.dtype != "float":
            raise ValueError(f"{self.kind} needs a numeric metric; {self.metric} is a flag")  # type: ignore[attr-defined]
        return self

    @override
    def metrics(self, kind: DeviceKind) -> tuple[str, ...]:
        return (self.metric,)


class StuckSensor(_SensorFault):
    """The sensor repeats the value it had when the fault began."""

    kind: Literal["stuck_sensor"]
    floats_only: ClassVar[bool] = False


class Spikes(_SensorFault):
    """Occasional wild readings (a loose connector)."""

    kind: Literal["spikes"]
    probability: float = Field(0.2, gt=0.0, le=1.0)
    magnitude: float | None = Field(None, gt=0.0)
    """Size of a spike in the metric's unit; default a quarter of its valid range."""


class Noise(_SensorFault):
    """The sensor gets noisy (failing ADC, interference)."""

    kind: Literal["noise"]
    sigma: float | None = Field(None, gt=0.0)
    """Standard deviation in the metric's unit; default 3 % of its valid range."""


class Dropout(_DeviceFault):
    """Reports go missing at random (a flaky link)."""

    kind: Literal["dropout"]
    probability: float = Field(0.5, gt=0.0, le=1.0)


MAX_SKEW_AHEAD_S = 240.0
"""Decoders refuse timestamps more than 300 s ahead; stay inside that."""


class ClockSkew(_DeviceFault):
    """The device clock is off: its timestamps are shifted by ``offset``."""

    kind: Literal["clock_skew"]
    offset: Seconds = -600.0

    @field_validator("offset")
    @classmethod
    def _plausible(cls, v: float) -> float:
        if v == 0:
            raise ValueError("a zero offset is no skew")
        if v > MAX_SKEW_AHEAD_S:
            raise ValueError(
                f"{v:g} s ahead would be refused by decoders (future limit 300 s); "
                f"use at most {MAX_SKEW_AHEAD_S:g} s or a negative offset"
            )
        if v < -86400:
            raise ValueError("offsets beyond a day behind are not plausible")
        return v


class Silent(_DeviceFault):
    """The device stops reporting (hung firmware); it says nothing about it."""

    kind: Literal["silent"]


Fault = Annotated[
    FanFailure
    | MainsOutage
    | Flooding
    | DoorIntrusion
    | CableCut
    | FibreDegradation
    | StuckSensor
    | Spikes
    | Noise
    | Dropout
    | ClockSkew
    | Silent,
    Field(discriminator="kind"),
]
