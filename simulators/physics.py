"""Vectorised device behaviour: one call advances every device of a kind by one step.

State lives in numpy arrays, one slot per device, so a step over 10,000 devices costs a
handful of array operations. Faults reach the physics only through ``CabinetConditions``
and ``SegmentConditions`` (what the world does to the device this step); sensor-level
faults (stuck, spikes, noise) are applied later to the readings.

Sensor noise comes from its own generator and is drawn in full every step, whatever the
faults, so a run with faults and the same run without differ only where faults act.
"""

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from simulators.climate import HOUR_MS, Climate, Weather, diurnal, monthly_mean_temp, traffic
from telemetry import CATALOGUE, DeviceKind

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

CABINET_METRICS = tuple(CATALOGUE[DeviceKind.CABINET])
SEGMENT_METRICS = tuple(CATALOGUE[DeviceKind.CABLE_SEGMENT])

THERMAL_TAU_S = 12 * 60.0
RECOVERY_S = 5 * THERMAL_TAU_S
"""After a thermal fault ends, its trace falls below the sensor noise within this."""
FAN_START_C = 30.0
FAN_MAX_RPM = 5200.0
FAN_STALL_RPM = 600.0
"""Below this the fan does not turn (reported as 0)."""
FAN_COOLING = 0.8
"""Share of the equipment's heat rise a fan at full speed removes."""
FLOAT_VOLTAGE = 54.0
LVD_VOLTAGE = 42.0
CHARGE_RATE_PER_H = 35.0
"""Recharge speed in SoC points per hour below 80 % (tapers above)."""
RECHARGE_HOURS_MAX = 100.0 / CHARGE_RATE_PER_H * 1.6
"""Upper bound on a full recharge from empty (used to bound labels)."""
WATER_DETECT_MM = 10.0
SPIN_UP_H = 6.0
"""Physics run-in before the first report: the thermal loop settles within an hour."""
STRAIN_SPIKE_S = 5 * 60.0
"""How long strain stays spiked after a cut before the severed cable goes slack."""


def clip_to_catalogue(kind: DeviceKind, name: str, values: Array) -> Array:
    """Clip readings into the metric's physically valid range so reports always decode."""
    spec = CATALOGUE[kind][name]
    return np.clip(values, spec.valid_min, spec.valid_max)


def _clip_all(kind: DeviceKind, metrics: "dict[str, Array | Mask]") -> None:
    for name, values in metrics.items():
        if values.dtype != np.bool_:
            metrics[name] = clip_to_catalogue(kind, name, values.astype(np.float64))


@dataclass
class CabinetConditions:
    """What faults do to cabinets this step (all arrays: one slot per cabinet)."""

    fan_failed: Mask
    mains_lost: Mask
    door_open: Mask
    water_mm: Array

    @classmethod
    def normal(cls, n: int) -> "CabinetConditions":
        return cls(np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, np.float64))


@dataclass
class SegmentConditions:
    """What faults do to cable segments this step (one slot per segment)."""

    cut_s: Array
    """Seconds since this segment was cut, NaN when intact."""
    dark: Mask
    """No light arrives (cut here or upstream)."""
    flood: Array
    """0-1 how flooded the duct is."""
    extra_loss_db: Array

    @classmethod
    def normal(cls, n: int) -> "SegmentConditions":
        return cls(
            np.full(n, np.nan), np.zeros(n, bool), np.zeros(n, np.float64), np.zeros(n, np.float64)
        )


@dataclass
class Step:
    """Readings of one kind at one instant, plus what changed (for events)."""

    metrics: dict[str, Array | Mask]
    alive: Mask
    events: dict[str, Mask] = field(default_factory=dict)
    """Event type value -> devices that raise it this step."""
    fan_wanted: Mask | None = None
    """Cabinets only: whose fan controller runs the fan this step (would, where the fan
    has failed). Ground truth, not a reading: a failed fan that would not have run
    changes nothing a sensor sees."""


class CabinetModel:
    """Street cabinets: ambient + equipment heat - fan cooling, mains and a VRLA battery."""

    def __init__(self, ward_index: npt.NDArray[np.int64], urban: Mask, seed: int) -> None:
        n = len(ward_index)
        self.n = n
        rng = np.random.default_rng([seed, 0xCAB])
        self._noise = np.random.default_rng([seed, 0xCAB, 1])
        self.ward_index = ward_index
        self.base_w = np.where(urban, rng.uniform(450, 1100, n), rng.uniform(200, 600, n))
        self.r_th = rng.uniform(0.025, 0.040, n)
        """Kelvin of heat rise per watt with the fan stopped."""
        self.sun = rng.uniform(0.0, 1.0, n)
        """Sun exposure of the enclosure: up to +4 K in the afternoon."""
        self.runtime_h = np.exp(rng.normal(np.log(1.6), 0.5, n))
        """Battery autonomy at the base load (aged strings vary a lot)."""
        self.cap_wh = self.base_w * self.runtime_h
        self.mains_nominal = rng.normal(229.0, 2.5, n)
        self.t_sensor_offset = rng.normal(0.0, 0.3, n)
        self.t_in = np.full(n, np.nan)
        self.soc = np.full(n, 100.0)
        self.alive = np.ones(n, bool)
        self._prev = CabinetConditions.normal(n)
        self._prev_on_battery = np.zeros(n, bool)
        self._water = np.zeros(n)

    def spin_up(self, start_ms: int, climate: Climate, hours: float = SPIN_UP_H) -> None:
        """Run the thermal state in from ``hours`` before ``start_ms`` (no faults, no noise
        drawn from the reading stream), so the first reports are already in equilibrium."""
        step_s = 300.0
        noise = self._noise
        self._noise = np.random.default_rng(0)  # spin-up noise is thrown away
        normal = CabinetConditions.normal(self.n)
        t = start_ms - hours * HOUR_MS
        while t < start_ms:
            self.step(t, step_s, climate.at(t), normal)
            t += step_s * 1000
        self._noise = noise

    def step(self, t_ms: float, dt_s: float, weather: Weather, cond: CabinetConditions) -> Step:
        n = self.n
        noise = self._noise.standard_normal((len(CABINET_METRICS), n))
        ambient = weather.temp[self.ward_index]
        rh_out = weather.humidity[self.ward_index]
        load = traffic(t_ms)
        power = self.base_w * load * (1.0 + 0.015 * noise[10])

        # Proportional fan control (PWM fans): off below FAN_START_C, full speed 10 K above.
        # No hysteresis on purpose: the loop forgets a disturbance, so a repaired fault
        # leaves no lasting trace (it would otherwise outlive the fault's label).
        sun_gain = 4.0 * self.sun * max(0.0, diurnal(t_ms, peak_hour=14.5))
        if np.isnan(self.t_in).any():  # first step: start near equilibrium
            self.t_in = ambient + sun_gain + power * self.r_th * (1 - FAN_COOLING * 0.5)
        wanted = np.clip((self.t_in - FAN_START_C) * (FAN_MAX_RPM / 10.0), 0.0, FAN_MAX_RPM)
        rpm = np.where(cond.fan_failed, 0.0, wanted)
        cooling = FAN_COOLING * rpm / FAN_MAX_RPM
        t_eq = ambient + sun_gain + power * self.r_th * (1.0 - cooling)
        self.t_in = t_eq + (self.t_in - t_eq) * np.exp(-dt_s / THERMAL_TAU_S)

        # Mains and battery.
        on_battery = cond.mains_lost
        dt_h = dt_s / 3600.0
        drain = power * dt_h / self.cap_wh * 100.0
        taper = np.clip((100.0 - self.soc) / 20.0, 0.15, 1.0)
        charge = CHARGE_RATE_PER_H * taper * dt_h
        self.soc = np.clip(np.where(on_battery, self.soc - drain, self.soc + charge), 0.0, 100.0)
        died = self.alive & on_battery & (self.soc <= 0.0)
        booted = ~self.alive & ~on_battery
        self.alive = (self.alive & ~died) | booted
        discharge_v = np.interp(
            self.soc, [0, 10, 20, 50, 80, 100], [LVD_VOLTAGE, 44.5, 46.0, 48.4, 50.3, 51.4]
        )
        charging_v = np.where(self.soc < 99.5, 55.8 + 0.6 * (self.soc / 100.0), FLOAT_VOLTAGE)
        temp_comp = -0.072 * (self.t_in - 25.0)
        batt_v = np.where(on_battery, discharge_v, charging_v + temp_comp) + 0.03 * noise[7]
        seasonal_sag = 3.0 * load
        mains = np.where(on_battery, 0.0, self.mains_nominal - seasonal_sag + 0.8 * noise[4])

        # Water follows the flood level with a few minutes' lag; humidity follows water.
        self._water = cond.water_mm + (self._water - cond.water_mm) * np.exp(-dt_s / 300.0)
        self._water = np.where(cond.water_mm <= 0.0, np.minimum(self._water, 0.0), self._water)
        water = np.where(self._water > 0.05, self._water, 0.0)
        # Warmer air holds more water (relative humidity halves per ~10 K of warming); the
        # enclosure breathes outside air, so the inside sees about half of its heat rise.
        rh_in = rh_out * np.power(2.0, -(self.t_in - ambient) / 20.0)
        wet = np.clip(water / 50.0, 0.0, 1.0)
        rh_in = rh_in + (97.0 - rh_in) * wet

        metrics: dict[str, Array | Mask] = {
            "temp_inside": self.t_in + self.t_sensor_offset + 0.1 * noise[0],
            "temp_outside": ambient + 0.5 * sun_gain + 0.15 * noise[1],
            "humidity": rh_in + 0.8 * noise[2],
            "door_open": cond.door_open.copy(),
            "mains_voltage": mains,
            "on_battery": on_battery.copy(),
            "battery_soc": self.soc.copy(),
            "battery_voltage": batt_v,
            "fan_rpm": np.where(rpm >= FAN_STALL_RPM, rpm + 25.0 * noise[8], 0.0),
            "water_level": np.where(water > 0, water + 0.5 * noise[9], 0.0),
            "power_draw": power,
        }
        _clip_all(DeviceKind.CABINET, metrics)
        prev = self._prev
        events = {
            "door_opened": cond.door_open & ~prev.door_open,
            "door_closed": ~cond.door_open & prev.door_open,
            "mains_lost": on_battery & ~self._prev_on_battery,
            "mains_restored": ~on_battery & self._prev_on_battery,
            "battery_empty": died,
            "water_detected": (water >= WATER_DETECT_MM) & (prev.water_mm < WATER_DETECT_MM),
        }
        self._prev = CabinetConditions(
            cond.fan_failed, cond.mains_lost, cond.door_open.copy(), water.copy()
        )
        self._prev_on_battery = on_battery.copy()
        return Step(metrics, self.alive.copy(), events, fan_wanted=wanted >= FAN_STALL_RPM)


class SegmentModel:
    """Sensor nodes in underground ducts: slow temperature, moisture, strain, optical loss."""

    def __init__(self, ward_index: npt.NDArray[np.int64], seed: int, start_ms: int) -> None:
        n = len(ward_index)
        self.n = n
        rng = np.random.default_rng([seed, 0x5E6])
        self._noise = np.random.default_rng([seed, 0x5E6, 1])
        self.ward_index = ward_index
        self.temp_offset = rng.normal(1.5, 0.8, n)
        self.moisture_base = rng.uniform(8.0, 30.0, n)
        self.strain_base = rng.uniform(150.0, 650.0, n)
        self.loss_base = rng.uniform(0.3, 1.3, n)
        self.ageing_db_per_year = rng.uniform(0.005, 0.03, n)
        self.installed_ms = start_ms - rng.uniform(1.0, 10.0, n) * 365.25 * 24 * HOUR_MS
        self.alive = np.ones(n, bool)
        self._prev_dark = np.zeros(n, bool)

    def step(self, t_ms: float, weather: Weather, cond: SegmentConditions) -> Step:
        """Readings at ``t_ms`` (the duct has no fast state: no time step needed)."""
        n = self.n
        noise = self._noise.standard_normal((len(SEGMENT_METRICS), n))
        # Ground a metre down: seasonal mean, a small diurnal wave lagging ~6 h behind the air.
        temp = (
            monthly_mean_temp(t_ms)
            + self.temp_offset
            + 0.6 * diurnal(t_ms, peak_hour=20.0)
            + 0.8 * traffic(t_ms)
            + 0.05 * noise[0]
        )
        rain = weather.rain[self.ward_index]
        moisture = self.moisture_base + 6.0 * rain
        moisture = moisture + (93.0 - moisture) * cond.flood + 0.4 * noise[1]
        cut = ~np.isnan(cond.cut_s)
        spiking = cut & (np.nan_to_num(cond.cut_s, nan=np.inf) < STRAIN_SPIKE_S)
        strain = self.strain_base + 15.0 * traffic(t_ms) + 4.0 * noise[2]
        strain = np.where(spiking, 3600.0 + 150.0 * noise[2], strain)
        strain = np.where(cut & ~spiking, 25.0 + 3.0 * np.abs(noise[2]), strain)
        years = (t_ms - self.installed_ms) / (365.25 * 24 * HOUR_MS)
        loss = (
            self.loss_base
            + self.ageing_db_per_year * years
            + 0.002 * (temp - 25.0)
            + cond.extra_loss_db
            + 0.01 * noise[3]
        )
        loss = np.where(cut, 52.0 + 0.5 * noise[3], loss)
        dark = cond.dark | cut
        metrics: dict[str, Array | Mask] = {
            "temp": temp,
            "moisture": moisture,
            "strain": strain,
            "optical_loss": loss,
            "signal": ~dark,
        }
        _clip_all(DeviceKind.CABLE_SEGMENT, metrics)
        events = {
            "signal_lost": dark & ~self._prev_dark,
            "signal_restored": ~dark & self._prev_dark,
        }
        self._prev_dark = dark.copy()
        return Step(metrics, self.alive.copy(), events)
