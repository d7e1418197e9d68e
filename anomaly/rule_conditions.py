"""The device rules' conditions, compiled: which rule holds on each device a batch
touched, and which of them changed.

A live batch of a large city touches ~1,000 devices; the conditions as numpy
expressions were some forty array operations a batch, each with its fixed cost, and
almost every batch changes nothing. Here one pass over the devices decides, and the
rules build their words and figures only for a device whose rule started or ended.
The words stay in ``anomaly/rules.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import numpy.typing as npt

from anomaly.config import DetectorConfig
from anomaly.prefetch import prefetch_item

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

METRICS = (
    "temp_inside",
    "fan_rpm",
    "on_battery",
    "mains_voltage",
    "battery_soc",
    "water_level",
    "door_open",
    "moisture",
    "signal",
    "strain",
    "optical_loss",
)
"""The metrics the rules read, in the rows of the gathered values."""
TRENDS = ("temp_inside", "battery_soc", "optical_loss", "moisture")
"""The metrics whose trend and learned count the rules read, in their rows."""
SCORES = ("strain", "optical_loss")
"""The metrics whose last score the rules read, in their rows."""

TEMP, FAN, ON_BATTERY, VOLTS, SOC, WATER, DOOR, MOIST, SIGNAL, STRAIN, OPTICAL = range(11)
T_TEMP, T_SOC, T_OPTICAL, T_MOIST = range(4)
S_STRAIN, S_OPTICAL = range(2)
HEAT, POWER, FLOOD, INTRUSION, CUT, CREEP = range(6)
"""Rule columns, in ``anomaly.rules.RULES`` order."""


AHEAD = 8
"""Devices ahead whose rule state is prefetched."""


class Thresholds(NamedTuple):
    """The configuration the conditions read (``thresholds``)."""

    fan_on_rpm: float
    heat_rise_c_per_h: float
    overheat_min_c: float
    fan_dead_c: float
    """The inside temperature above which a stopped fan is a failure."""
    ingress_rise_per_h: float
    warmup: float
    ingress_hold_margin: float
    score_on: float
    fibre_creep_db_per_h: float
    settled: float
    """Readings after which a trend counts (two of its time constants)."""


def thresholds(cfg: DetectorConfig) -> Thresholds:
    """The thresholds of a configuration."""
    return Thresholds(
        fan_on_rpm=cfg.fan_on_rpm,
        heat_rise_c_per_h=cfg.heat_rise_c_per_h,
        overheat_min_c=cfg.overheat_min_c,
        fan_dead_c=cfg.fan_start_c + cfg.fan_stopped_margin_c,
        ingress_rise_per_h=cfg.ingress_rise_per_h,
        warmup=float(cfg.warmup),
        ingress_hold_margin=cfg.ingress_hold_margin,
        score_on=cfg.score_on,
        fibre_creep_db_per_h=cfg.fibre_creep_db_per_h,
        settled=2.0 * cfg.trend_periods,
    )


class Judged(NamedTuple):
    """Per device (rows) and rule (columns, ``HEAT`` …)."""

    on: BoolArray
    critical: BoolArray
    fan_dead: BoolArray
    """Per device: the heat rule holds because the fan stopped (its words differ)."""
    changed: int
    """Devices × rules whose state differs from ``active``."""


@numba.njit(cache=True, nogil=True)
def _judge(
    value: FloatArray,
    trend: FloatArray,
    learned: FloatArray,
    score: FloatArray,
    th: Thresholds,
    devs: IntArray,
    active: BoolArray,
    flood_from: FloatArray,
    night: bool,
) -> tuple[BoolArray, BoolArray, BoolArray, int]:
    # NaN (no such series, or no reading yet) compares False, as numpy's comparisons do.
    # Each device's rule state and flood level, asked for AHEAD devices on: a live batch
    # touches a thousand devices of a large city at random, their rows cold (a miss
    # each, one after the other: 70 us of a live batch; 13 us warm).
    n = devs.shape[0]
    levels = flood_from.reshape(-1, 1)  # a table, for the prefetch
    for j in range(min(n, AHEAD)):
        prefetch_item(active, devs[j], 0)
        prefetch_item(levels, devs[j], 0)
    on = np.zeros((n, 6), dtype=np.bool_)
    critical = np.zeros((n, 6), dtype=np.bool_)
    fan_dead = np.zeros(n, dtype=np.bool_)
    changed = 0
    for j in range(n):
        d = devs[j]
        if j + AHEAD < n:
            prefetch_item(active, devs[j + AHEAD], 0)
            prefetch_item(levels, devs[j + AHEAD], 0)
        temp = value[TEMP, j]
        fan = value[FAN, j]
        dead = fan <= 0.0 and temp >= th.fan_dead_c
        heat = (
            fan >= th.fan_on_rpm
            and trend[T_TEMP, j] >= th.heat_rise_c_per_h
            and learned[T_TEMP, j] >= th.settled
            and temp >= th.overheat_min_c
        ) or dead
        soc = value[SOC, j]
        mains_lost = value[ON_BATTERY, j] >= 1.0 or value[VOLTS, j] < 180.0
        draining = mains_lost and (trend[T_SOC, j] < 0.0 or np.isnan(soc))
        water = value[WATER, j]
        moist = value[MOIST, j]
        # Water ingress seen rising: far faster than rain ever lifts a duct; the flood
        # then holds while the moisture stays near where the rise was seen.
        rising = trend[T_MOIST, j] >= th.ingress_rise_per_h and learned[T_MOIST, j] >= th.warmup
        held = moist >= flood_from[d] - th.ingress_hold_margin and active[d, FLOOD]
        flood = water >= 30.0 or moist >= 60.0 or rising or held
        signal = value[SIGNAL, j]
        strain = value[STRAIN, j]
        optical = value[OPTICAL, j]
        cut = signal < 1.0 and (
            strain >= 1500.0
            or score[S_STRAIN, j] >= th.score_on
            or optical >= 6.0
            or score[S_OPTICAL, j] >= th.score_on
        )
        creep = (
            signal >= 1.0
            and trend[T_OPTICAL, j] >= th.fibre_creep_db_per_h
            and learned[T_OPTICAL, j] >= th.settled
        )
        fan_dead[j] = dead
        on[j, HEAT] = heat
        on[j, POWER] = draining
        on[j, FLOOD] = flood
        on[j, INTRUSION] = value[DOOR, j] >= 1.0 and night
        on[j, CUT] = cut
        on[j, CREEP] = creep
        critical[j, HEAT] = heat and temp >= 55.0
        critical[j, POWER] = draining and soc < 20.0
        critical[j, FLOOD] = water >= 100.0 or moist >= 85.0
        critical[j, CUT] = cut
        for k in range(6):
            if on[j, k] != active[d, k]:
                changed += 1
    return on, critical, fan_dead, changed


def judge(
    value: FloatArray,
    trend: FloatArray,
    learned: FloatArray,
    score: FloatArray,
    th: Thresholds,
    devs: IntArray,
    active: BoolArray,
    flood_from: FloatArray,
    *,
    night: bool,
) -> Judged:
    """The rules' state on devices ``devs`` from their gathered inputs (rows ``METRICS``,
    ``TRENDS``, ``SCORES``; columns ``devs``' order), against each device's current state
    ``active[device, rule]`` and the moisture a flood was seen rising at."""
    return Judged(*_judge(value, trend, learned, score, th, devs, active, flood_from, night))
