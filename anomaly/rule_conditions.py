"""The device rules, compiled: what they read of each device a batch touched, which
rule holds on it, and which of them changed.

A live batch of a large city touches ~1,000 devices; the conditions as numpy
expressions were some forty array operations a batch, each with its fixed cost, and
almost every batch changes nothing. Here one pass over the devices reads each device's
inputs from the state tables and decides, and the rules build their words and figures
only for a device whose rule started or ended. The words stay in ``anomaly/rules.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import numpy.typing as npt

from anomaly.config import DetectorConfig
from anomaly.layout import LAST_SCORE, LAST_X, TREND, N
from anomaly.prefetch import prefetch_item, prefetch_row, unsigned

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

_TREND = len(METRICS)
_LEARNED = _TREND + len(TRENDS)
_SCORE = _LEARNED + len(TRENDS)
INPUTS = _SCORE + len(SCORES)
"""What the rules read of a device, in this order: the last values of ``METRICS``, the
trends and the learned counts of ``TRENDS``, the last scores of ``SCORES``."""
TREND_ROWS = tuple(METRICS.index(name) for name in TRENDS)
SCORE_ROWS = tuple(METRICS.index(name) for name in SCORES)
COLUMNS = np.array([LAST_X, N, TREND, LAST_SCORE], dtype=np.int64)
"""The state columns read (last value, learned count, trend, last score): an argument
of the compiled pass, not constants baked into it (numba's cache checks only this
file's timestamp, and a changed layout must not run stale column numbers)."""

AHEAD = 8
"""Devices ahead whose series' state and rule state are prefetched (their row of
slots, twice as far)."""


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


class RuleInputs(NamedTuple):
    """What the rules read, per metric (rows) and device (columns, ``devs``' order)."""

    value: FloatArray
    """Last value of the ``METRICS``; NaN where the device has no such series."""
    trend: FloatArray
    """Trend of the ``TRENDS`` metrics; 0 where there is none."""
    learned: FloatArray
    """Readings learned by the ``TRENDS`` metrics; 0 where there is none."""
    score: FloatArray
    """Last combined score of the ``SCORES`` metrics; 0 where there is none."""


class Judged(NamedTuple):
    """Which devices' rules changed and, where asked for (``judge``'s ``keep``), each
    device's inputs and rules (rows: devices in ``devs``' order; columns: rules,
    ``HEAT`` …)."""

    moved: IntArray
    """Indices into ``devs`` of the devices where some rule starts or ends."""
    inputs: RuleInputs
    on: BoolArray
    critical: BoolArray
    fan_dead: BoolArray
    """Per device: the heat rule holds because the fan stopped (its words differ)."""


@numba.njit(cache=True, nogil=True, inline="always")
def _conditions(
    got: tuple[float, ...], th: Thresholds, flood_held: bool, flood_level: float, night: bool
) -> tuple[tuple[bool, bool, bool, bool, bool, bool], tuple[bool, bool, bool, bool], bool]:
    """The rules on a device of inputs ``got`` (``INPUTS`` floats) whose flood rule is
    ``flood_held`` (seen rising at moisture ``flood_level``): each rule's state, whether
    heat, power, flood and cut are critical, and whether the heat is a stopped fan.
    Scalars in and out: an array passed to a helper costs reference counting, atomic
    operations, at every device. NaN (no such series, or no reading yet) compares
    False, as numpy's comparisons do."""
    temp = got[TEMP]
    fan = got[FAN]
    dead = fan <= 0.0 and temp >= th.fan_dead_c
    heat = (
        fan >= th.fan_on_rpm
        and got[_TREND + T_TEMP] >= th.heat_rise_c_per_h
        and got[_LEARNED + T_TEMP] >= th.settled
        and temp >= th.overheat_min_c
    ) or dead
    soc = got[SOC]
    mains_lost = got[ON_BATTERY] >= 1.0 or got[VOLTS] < 180.0
    draining = mains_lost and (got[_TREND + T_SOC] < 0.0 or np.isnan(soc))
    water = got[WATER]
    moist = got[MOIST]
    # Water ingress seen rising: far faster than rain ever lifts a duct; the flood then
    # holds while the moisture stays near where the rise was seen.
    rising = got[_TREND + T_MOIST] >= th.ingress_rise_per_h and got[_LEARNED + T_MOIST] >= th.warmup
    held = moist >= flood_level - th.ingress_hold_margin and flood_held
    flood = water >= 30.0 or moist >= 60.0 or rising or held
    signal = got[SIGNAL]
    cut = signal < 1.0 and (
        got[STRAIN] >= 1500.0
        or got[_SCORE + S_STRAIN] >= th.score_on
        or got[OPTICAL] >= 6.0
        or got[_SCORE + S_OPTICAL] >= th.score_on
    )
    creep = (
        signal >= 1.0
        and got[_TREND + T_OPTICAL] >= th.fibre_creep_db_per_h
        and got[_LEARNED + T_OPTICAL] >= th.settled
    )
    intrusion = got[DOOR] >= 1.0 and night
    critical = (
        heat and temp >= 55.0,
        draining and soc < 20.0,
        water >= 100.0 or moist >= 85.0,
        cut,
    )
    return (heat, draining, flood, intrusion, cut, creep), critical, dead


@numba.njit(cache=True, nogil=True)
def _rules_pass(
    device_slots: npt.NDArray[np.int32],
    metric_ids: IntArray,
    devs: IntArray,
    f64: FloatArray,
    f32: npt.NDArray[np.float32],
    cols: IntArray,
    th: Thresholds,
    active: BoolArray,
    flood_from: FloatArray,
    night: bool,
    keep: bool,
) -> tuple[IntArray, FloatArray, BoolArray, BoolArray, BoolArray]:
    # Device by device: its inputs read into a small buffer (in the cache), its rules
    # decided from them. Its row of slots is asked for two devices ahead (two cache
    # lines; one a metric from the transposed table measured 1.8 times slower); one
    # device ahead, the state of the series it names, its rule state and flood level.
    # In a large city all of it is cold again (the kernel wrote it a batch of series
    # ago): a miss each, one after the other, 91 ns a device unprefetched.
    x_col, n_col = unsigned(cols[0]), unsigned(cols[1])
    trend_col, score_col = unsigned(cols[2]), unsigned(cols[3])
    n = devs.shape[0]
    width = n if keep else 0
    inputs = np.empty((width, INPUTS))
    on = np.zeros((width, 6), dtype=np.bool_)
    critical = np.zeros((width, 6), dtype=np.bool_)
    fan_dead = np.zeros(width, dtype=np.bool_)
    moved = np.empty(n, dtype=np.int64)
    count = 0
    got = np.empty(INPUTS)
    levels = flood_from.reshape(-1, 1)  # a table, for the prefetch
    for j in range(min(n, 2 * AHEAD)):
        prefetch_row(device_slots, devs[j])
    for j in range(min(n, AHEAD)):
        prefetch_item(active, devs[j], 0)
        prefetch_item(levels, devs[j], 0)
    for j in range(n):
        d = unsigned(devs[j])  # indices numba need not wrap (prefetch.unsigned)
        if j + 2 * AHEAD < n:
            prefetch_row(device_slots, devs[j + 2 * AHEAD])
        if j + AHEAD < n:
            ahead = devs[j + AHEAD]
            prefetch_item(active, ahead, 0)
            prefetch_item(levels, ahead, 0)
            for r in range(len(METRICS)):
                s = device_slots[ahead, metric_ids[r]]
                if s >= 0:
                    prefetch_item(f64, s, x_col)
                    prefetch_item(f64, s, n_col)
                    prefetch_item(f32, s, trend_col)
                    prefetch_item(f32, s, score_col)
        for r in range(len(METRICS)):
            s = device_slots[d, unsigned(metric_ids[r])]
            got[r] = f64[unsigned(s), x_col] if s >= 0 else np.nan
        for q in range(len(TRENDS)):
            s = device_slots[d, unsigned(metric_ids[TREND_ROWS[q]])]
            got[_TREND + q] = f32[unsigned(s), trend_col] if s >= 0 else 0.0
            got[_LEARNED + q] = f64[unsigned(s), n_col] if s >= 0 else 0.0
        for q in range(len(SCORES)):
            s = device_slots[d, unsigned(metric_ids[SCORE_ROWS[q]])]
            got[_SCORE + q] = f32[unsigned(s), score_col] if s >= 0 else 0.0
        rules, crit, dead = _conditions(
            (
                got[0],
                got[1],
                got[2],
                got[3],
                got[4],
                got[5],
                got[6],
                got[7],
                got[8],
                got[9],
                got[10],
                got[11],
                got[12],
                got[13],
                got[14],
                got[15],
                got[16],
                got[17],
                got[18],
                got[19],
                got[20],
            ),
            th,
            active[d, FLOOD],
            flood_from[d],
            night,
        )
        for k in range(6):
            if rules[k] != active[d, k]:
                moved[count] = j
                count += 1
                break
        if keep:
            inputs[j] = got
            for k in range(6):
                on[j, k] = rules[k]
            critical[j, HEAT] = crit[0]
            critical[j, POWER] = crit[1]
            critical[j, FLOOD] = crit[2]
            critical[j, CUT] = crit[3]
            fan_dead[j] = dead
    return moved[:count], inputs, on, critical, fan_dead


assert INPUTS == 21, "the tuple _rules_pass builds for _conditions"


def judge(
    device_slots: npt.NDArray[np.int32],
    metric_ids: IntArray,
    devs: IntArray,
    f64: FloatArray,
    f32: npt.NDArray[np.float32],
    th: Thresholds,
    active: BoolArray,
    flood_from: FloatArray,
    *,
    night: bool,
    keep: bool = False,
) -> Judged:
    """The rules on devices ``devs`` against each device's current state
    ``active[device, rule]`` and the moisture its flood was seen rising at, the inputs
    read from the state tables (``device_slots[device, metric]`` is the slot of the
    device's series of a metric, -1 for none; ``metric_ids``: the ids of ``METRICS``).
    ``keep``: also each device's inputs and rules (a batch where some changed judges
    those devices again for them: their words and figures), else only which changed,
    with no array per device (for a batch of 100,000 devices, 17 MB of fresh memory)."""
    moved, inputs, on, critical, fan_dead = _rules_pass(
        device_slots, metric_ids, devs, f64, f32, COLUMNS, th, active, flood_from, night, keep
    )
    got = RuleInputs(
        inputs[:, :_TREND].T,
        inputs[:, _TREND:_LEARNED].T,
        inputs[:, _LEARNED:_SCORE].T,
        inputs[:, _SCORE:].T,
    )
    return Judged(moved, got, on, critical, fan_dead)
