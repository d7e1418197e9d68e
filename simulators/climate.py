"""Hanoi's weather as smooth, seeded functions of time (vectorised over wards).

Monthly means follow Hanoi's climate normals (about 17 °C in January, 29-30 °C in June and
July); the day swings about ±3.5 °C around the mean, peaking near 14:00 local time (UTC+7);
relative humidity is high (70-90 %) and runs opposite to temperature; rain showers, more
frequent in the monsoon months, cool the air and saturate it. Weather is a pure function
of time and the seed: the same instant always has the same weather, which keeps the
simulator deterministic however it is stepped.
"""

import bisect
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

UTC_OFFSET_H = 7.0
DAY_MS = 86_400_000
HOUR_MS = 3_600_000

# Hanoi climate normals (Láng station, rounded), one value per month Jan..Dec.
MONTHLY_TEMP_C = np.array([16.9, 17.8, 20.4, 24.1, 27.6, 29.3, 29.6, 29.0, 27.9, 25.4, 22.0, 18.6])
MONTHLY_RH = np.array([80.0, 83.0, 86.0, 86.0, 81.0, 80.0, 81.0, 84.0, 81.0, 78.0, 77.0, 77.0])
MONTHLY_RAIN_PER_DAY = np.array([0.2, 0.3, 0.4, 0.5, 0.8, 1.0, 1.2, 1.2, 0.9, 0.5, 0.3, 0.2])
"""Expected rain showers per day."""
DIURNAL_AMPLITUDE_C = 3.5
PEAK_HOUR = 14.0
URBAN_HEAT_C = 0.8
RH_PER_C = 3.0
"""Humidity points lost per degree above the daily mean."""
MAX_SHOWER_H = 2.5
RAIN_COOLING_C = 2.5
RAIN_RH = 15.0

_MID_MONTH_DOY = (np.arange(12) + 0.5) * 365.25 / 12
_WRAPPED_DOY = np.concatenate(
    [[_MID_MONTH_DOY[-1] - 365.25], _MID_MONTH_DOY, [_MID_MONTH_DOY[0] + 365.25]]
)


def day_of_year(t_ms: float) -> float:
    return ((t_ms + UTC_OFFSET_H * HOUR_MS) / DAY_MS) % 365.25


def local_hour(t_ms: float) -> float:
    """Hour of day in Hanoi (0-24, fractional)."""
    return ((t_ms / HOUR_MS) + UTC_OFFSET_H) % 24.0


def _seasonal(table: npt.NDArray[np.float64], t_ms: float) -> float:
    doy = day_of_year(t_ms)
    xs = np.concatenate(
        [[_MID_MONTH_DOY[-1] - 365.25], _MID_MONTH_DOY, [_MID_MONTH_DOY[0] + 365.25]]
    )
    ys = np.concatenate([[table[-1]], table, [table[0]]])
    return float(np.interp(doy, xs, ys))


def monthly_mean_temp(t_ms: float) -> float:
    """Seasonal mean air temperature, interpolated between mid-months."""
    return _seasonal(MONTHLY_TEMP_C, t_ms)


def diurnal(t_ms: float, peak_hour: float = PEAK_HOUR) -> float:
    """-1..1, +1 at ``peak_hour`` local time."""
    return float(np.cos(2 * np.pi * (local_hour(t_ms) - peak_hour) / 24.0))


def traffic(t_ms: float) -> float:
    """Network load as a share of the daily peak: low before dawn, highest in the evening."""
    h = local_hour(t_ms)
    evening = np.cos(2 * np.pi * (h - 20.5) / 24.0)
    midday = np.cos(4 * np.pi * (h - 12.0) / 24.0)
    return float(0.76 + 0.17 * evening + 0.05 * midday)


@dataclass(frozen=True, slots=True)
class Shower:
    start_ms: float
    end_ms: float
    intensity: float
    """0-1."""


@dataclass(frozen=True, slots=True)
class Weather:
    """Outdoor conditions at one instant, one value per ward."""

    temp: Array
    humidity: Array
    rain: Array
    """0-1 rain intensity."""
    daily_mean: float


class Climate:
    """Seeded weather over a time span for a set of wards."""

    def __init__(self, urban: npt.NDArray[np.bool_], start_ms: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 0xC11A7E])
        n = len(urban)
        self._urban_heat = np.where(urban, URBAN_HEAT_C, 0.0)
        self._ward_offset = rng.normal(0.0, 0.3, n)
        self._rain_exposure = rng.uniform(0.6, 1.4, n)
        # Multi-day weather anomaly: a few slow sinusoids with random phases.
        self._anomaly_periods_h = np.array([53.0, 97.0, 211.0])
        self._anomaly_amp = np.array([0.8, 1.0, 1.2])
        self._anomaly_phase = rng.uniform(0, 2 * np.pi, 3)
        # Showers are drawn lazily, in order, from their own generator: however far a run
        # goes (endless runs too), the same seed gives the same weather.
        self._shower_rng = np.random.default_rng([seed, 0xC11A7E, 1])
        self._drawn_until = float(start_ms - DAY_MS)
        self.showers: list[Shower] = []
        self._starts: list[float] = []
        self._draw_showers(start_ms + 2 * DAY_MS)

    def _draw_showers(self, until_ms: float) -> None:
        while self._drawn_until < until_ms:
            t = self._drawn_until
            rate_per_ms = _seasonal(MONTHLY_RAIN_PER_DAY, t) / DAY_MS
            t += self._shower_rng.exponential(1.0 / rate_per_ms)
            length = self._shower_rng.uniform(0.5, MAX_SHOWER_H) * HOUR_MS
            self.showers.append(Shower(t, t + length, float(self._shower_rng.uniform(0.3, 1.0))))
            self._starts.append(t)
            self._drawn_until = t

    def rain_at(self, t_ms: float) -> float:
        """City-wide rain intensity 0-1, with 10-minute ramps at both ends of a shower."""
        if t_ms + DAY_MS > self._drawn_until:
            self._draw_showers(t_ms + 2 * DAY_MS)
        ramp = 10 * 60_000.0
        level = 0.0
        i = bisect.bisect_right(self._starts, t_ms)
        while i > 0 and self._starts[i - 1] >= t_ms - MAX_SHOWER_H * HOUR_MS:
            i -= 1
            s = self.showers[i]
            if s.start_ms <= t_ms <= s.end_ms:
                edge = min(t_ms - s.start_ms, s.end_ms - t_ms) / ramp
                level = max(level, s.intensity * min(1.0, edge))
        return level

    def at(self, t_ms: float) -> Weather:
        """Outdoor weather in every ward at ``t_ms``."""
        hours = t_ms / HOUR_MS
        anomaly = float(
            np.sum(
                self._anomaly_amp
                * np.sin(2 * np.pi * hours / self._anomaly_periods_h + self._anomaly_phase)
            )
        )
        daily_mean = monthly_mean_temp(t_ms) + anomaly
        swing = DIURNAL_AMPLITUDE_C * diurnal(t_ms)
        rain = np.clip(self.rain_at(t_ms) * self._rain_exposure, 0.0, 1.0)
        temp = daily_mean + swing + self._urban_heat + self._ward_offset - RAIN_COOLING_C * rain
        humidity = _seasonal(MONTHLY_RH, t_ms) - RH_PER_C * swing + RAIN_RH * rain
        return Weather(
            temp=temp,
            humidity=np.clip(humidity, 35.0, 99.0),
            rain=rain,
            daily_mean=daily_mean,
        )
