"""Device behaviour: valid ranges, Hanoi's daily and seasonal shape, a healthy baseline."""

from collections import defaultdict

import msgspec
import numpy as np
import pytest

from simulators.climate import local_hour
from simulators.fleet import build_fleet
from simulators.labels import parse_iso_utc
from simulators.simulation import Simulation
from simulators.wards import load_wards
from telemetry import CATALOGUE, DeviceKind, Report, decode_message

FLEET = build_fleet(150, 11, load_wards())
Readings = dict[str, dict[int, list[float]]]


def _day(start: str, seed: int = 5) -> tuple[Simulation, Readings]:
    """One simulated day at 10-minute reports: metric -> local hour -> values."""
    sim = Simulation(
        FLEET, start_ms=parse_iso_utc(start), duration_s=86400, period_s=600, seed=seed
    )
    out: Readings = defaultdict(lambda: defaultdict(list))
    for message in sim:
        _, decoded = decode_message(message.topic, message.payload, now_ms=message.due_ms)
        if isinstance(decoded, Report):
            hour = int(local_hour(decoded.ts))
            for name, value in decoded.metrics.items():
                out[name][hour].append(float(value))
    return sim, out


@pytest.fixture(scope="module")
def july() -> Readings:
    return _day("2026-07-15T00:00:00Z")[1]


@pytest.fixture(scope="module")
def january() -> Readings:
    return _day("2026-01-15T00:00:00Z")[1]


def _mean(readings: Readings, metric: str, hours: range | None = None) -> float:
    by_hour = readings[metric]
    chosen = hours if hours is not None else range(24)
    return float(np.mean([v for h in chosen for v in by_hour[h]]))


def test_every_reading_decodes_and_stays_in_range(july: Readings) -> None:
    # _day decodes every message with the contract; here: all metrics present, in range.
    names = set(CATALOGUE[DeviceKind.CABINET]) | set(CATALOGUE[DeviceKind.CABLE_SEGMENT])
    assert set(july) == names


def test_diurnal_shape_peaks_in_the_afternoon(july: Readings) -> None:
    afternoon = _mean(july, "temp_outside", range(13, 16))
    before_dawn = _mean(july, "temp_outside", range(3, 6))
    assert 4.0 < afternoon - before_dawn < 10.0
    hourly = [_mean(july, "temp_outside", range(h, h + 1)) for h in range(24)]
    assert 12 <= int(np.argmax(hourly)) <= 16
    # Ambient humidity runs opposite to temperature; inside it follows the same way.
    assert _mean(july, "humidity", range(3, 6)) > _mean(july, "humidity", range(13, 16)) + 5


def test_seasons(july: Readings, january: Readings) -> None:
    assert 24 < _mean(july, "temp_outside") < 34
    assert 12 < _mean(january, "temp_outside") < 22
    assert _mean(july, "temp") > _mean(january, "temp") + 8  # the ground warms too


def test_load_heats_the_cabinet_and_the_fan_answers(july: Readings) -> None:
    assert _mean(july, "temp_inside") > _mean(july, "temp_outside") + 2
    assert _mean(july, "fan_rpm", range(13, 16)) > _mean(july, "fan_rpm", range(3, 6))
    evening = _mean(july, "power_draw", range(19, 22))
    assert evening > _mean(july, "power_draw", range(3, 6)) * 1.2


def test_healthy_plant_baseline(july: Readings) -> None:
    assert all(v == 100.0 for vs in july["battery_soc"].values() for v in vs)
    assert 52.5 < _mean(july, "battery_voltage") < 55.0
    assert 220 < _mean(july, "mains_voltage") < 236
    assert not any(v for vs in july["on_battery"].values() for v in vs)
    assert not any(v for vs in july["door_open"].values() for v in vs)
    assert all(v == 0 for vs in july["water_level"].values() for v in vs)
    assert all(v == 1.0 for vs in july["signal"].values() for v in vs)
    losses = [v for vs in july["optical_loss"].values() for v in vs]
    assert min(losses) > 0.2
    assert max(losses) < 2.5


def test_rain_showers_wet_the_ducts_and_the_air() -> None:
    sim = Simulation(
        FLEET, start_ms=parse_iso_utc("2026-07-15T00:00:00Z"), duration_s=86400, period_s=300
    )
    rainy = [s for s in sim.climate.showers if s.start_ms > sim.start_ms and s.intensity > 0.5]
    assert rainy, "a July day in Hanoi has showers"
    wet: list[float] = []
    dry: list[float] = []
    for message in sim:
        if message.due_ms > rainy[0].end_ms:
            break
        body = msgspec.json.decode(message.payload)
        if "moisture" in body.get("metrics", {}):
            rain = sim.climate.rain_at(message.due_ms)
            (wet if rain > 0.4 else dry if rain == 0 else []).append(body["metrics"]["moisture"])
    assert wet
    assert np.mean(wet) > np.mean(dry) + 2
    mid = (rainy[0].start_ms + rainy[0].end_ms) / 2
    assert sim.climate.at(mid).humidity.mean() > 85


def test_noise_is_seeded() -> None:
    start = parse_iso_utc("2026-03-01T00:00:00Z")
    a = [m.payload for m in Simulation(FLEET, start_ms=start, duration_s=3600, seed=1)]
    b = [m.payload for m in Simulation(FLEET, start_ms=start, duration_s=3600, seed=1)]
    c = [m.payload for m in Simulation(FLEET, start_ms=start, duration_s=3600, seed=2)]
    assert a == b
    assert a != c
    decoded = [msgspec.json.decode(p) for p in a]
    assert len({d["metrics"].get("temp_inside") for d in decoded if "metrics" in d}) > 100
