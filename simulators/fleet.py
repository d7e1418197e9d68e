"""A seeded, reproducible fleet of street cabinets and cable-route sensor nodes in Hanoi.

Streets are either underground (cables in ducts: the city moved cables underground on
209 of its 255 streets) or overhead; cable-segment sensors live only under underground
streets. Cabinets stand along streets near their ward's centroid. Roughly 60 % of the
devices are cabinets, 40 % cable segments; every ward gets a device when N allows, and
urban wards get more.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from simulators.wards import Ward
from telemetry import DeviceInfo, DeviceKind

UNDERGROUND_SHARE = 209 / 255
"""Share of streets whose cables run underground."""
SEGMENT_SHARE = 0.4
SEGMENT_LENGTH_M = 180.0
ROUTE_SEGMENTS = (3, 9)
"""Segments per route: uniform in [low, high)."""
URBAN_WEIGHT = 4.0
"""How much denser urban wards are equipped than rural communes."""
RURAL_ROAD = "Đường liên xã"
"""Street used for communes that list no streets (overhead plant only)."""
_M_PER_DEG_LAT = 111_320.0


@dataclass(frozen=True, slots=True)
class Street:
    """One street of one ward, laid out as a straight line through ``origin``."""

    ward: Ward
    name: str
    underground: bool
    lat: float
    lon: float
    bearing: float
    """Radians from north."""

    def point(self, metres: float) -> tuple[float, float]:
        """Coordinates ``metres`` along the street from its origin."""
        dlat = metres * math.cos(self.bearing) / _M_PER_DEG_LAT
        dlon = metres * math.sin(self.bearing) / (_M_PER_DEG_LAT * math.cos(math.radians(self.lat)))
        return round(float(self.lat + dlat), 6), round(float(self.lon + dlon), 6)


@dataclass(frozen=True, slots=True)
class Fleet:
    """The devices of one simulated city: cabinets first, then cable segments."""

    seed: int
    wards: tuple[Ward, ...]
    streets: tuple[Street, ...]
    devices: tuple[DeviceInfo, ...]
    urban: tuple[bool, ...]
    """Per device: whether its ward is urban."""
    by_id: dict[str, int] = field(repr=False)

    @property
    def cabinets(self) -> tuple[DeviceInfo, ...]:
        return tuple(d for d in self.devices if d.kind is DeviceKind.CABINET)

    @property
    def segments(self) -> tuple[DeviceInfo, ...]:
        return tuple(d for d in self.devices if d.kind is DeviceKind.CABLE_SEGMENT)

    def indices(self, kind: DeviceKind) -> np.ndarray:
        """Global indices of the devices of ``kind``, in fleet order."""
        return np.array([i for i, d in enumerate(self.devices) if d.kind is kind], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.devices)


def _layout_streets(wards: Sequence[Ward], rng: np.random.Generator) -> list[Street]:
    names = sorted({s for w in wards for s in w.streets})
    n_underground = round(UNDERGROUND_SHARE * len(names))
    underground = set(rng.permutation(np.array(names, dtype=object))[:n_underground].tolist())
    streets: list[Street] = []
    for ward in wards:
        spread_m = 500.0 if ward.urban else 1500.0
        for name in ward.streets or [RURAL_ROAD]:
            north, east = rng.normal(0.0, spread_m, 2)
            lat = ward.lat + north / _M_PER_DEG_LAT
            lon = ward.lon + east / (_M_PER_DEG_LAT * math.cos(math.radians(ward.lat)))
            streets.append(
                Street(
                    ward,
                    name,
                    name in underground,
                    float(lat),
                    float(lon),
                    float(rng.uniform(0, math.pi)),
                )
            )
    return streets


def _allocate(total: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` over slots: one each first when possible, the rest by weight."""
    n = len(weights)
    counts = np.zeros(n, dtype=np.int64)
    if total <= 0 or n == 0:
        return counts
    p = weights / weights.sum()
    if total < n:
        chosen = rng.choice(n, size=total, replace=False, p=p)
        counts[chosen] = 1
        return counts
    counts += 1
    counts += rng.multinomial(total - n, p)
    return counts


def build_fleet(n_devices: int, seed: int, wards: Sequence[Ward]) -> Fleet:
    """Build a fleet of ``n_devices`` devices over ``wards``, reproducibly from ``seed``."""
    if n_devices < 1:
        raise ValueError(f"a fleet needs at least one device, got {n_devices}")
    rng = np.random.default_rng([seed, 0xF1EE7])
    streets = _layout_streets(wards, rng)
    duct_streets = [s for s in streets if s.underground]
    n_segments = round(SEGMENT_SHARE * n_devices) if duct_streets else 0
    n_cabinets = n_devices - n_segments

    devices: list[DeviceInfo] = []
    urban: list[bool] = []
    ward_weights = np.array([URBAN_WEIGHT if w.urban else 1.0 for w in wards])
    per_ward = _allocate(n_cabinets, ward_weights, rng)
    streets_of = {w.codename: [s for s in streets if s.ward is w] for w in wards}
    for ward, count in zip(wards, per_ward.tolist(), strict=True):
        for _ in range(count):
            street = streets_of[ward.codename][rng.integers(len(streets_of[ward.codename]))]
            lat, lon = street.point(rng.uniform(-400.0, 400.0))
            cab_id = f"cab-{len(devices) + 1:06d}"
            devices.append(
                DeviceInfo(cab_id, DeviceKind.CABINET, ward.codename, street.name, lat, lon)
            )
            urban.append(ward.urban)

    # Routes: one duct run under one street, segments numbered outwards from the exchange.
    # Visit duct streets in a shuffled cycle, urban ones weighted, so routes spread out.
    order = rng.permutation(len(duct_streets)) if duct_streets else np.array([], dtype=int)
    route_no = 0
    placed = 0
    while placed < n_segments:
        street = duct_streets[order[route_no % len(order)]]
        if not street.ward.urban and rng.random() > 1 / URBAN_WEIGHT:
            route_no += 1
            continue
        route_no += 1
        route = f"r{route_no:04d}"
        length = min(int(rng.integers(*ROUTE_SEGMENTS)), n_segments - placed)
        for position in range(length):
            lat, lon = street.point((position + 0.5) * SEGMENT_LENGTH_M)
            devices.append(
                DeviceInfo(
                    f"seg-{route}-{position:02d}",
                    DeviceKind.CABLE_SEGMENT,
                    street.ward.codename,
                    street.name,
                    lat,
                    lon,
                    route=route,
                    position=position,
                )
            )
            urban.append(street.ward.urban)
        placed += length
    return Fleet(
        seed=seed,
        wards=tuple(wards),
        streets=tuple(streets),
        devices=tuple(devices),
        urban=tuple(urban),
        by_id={d.id: i for i, d in enumerate(devices)},
    )
