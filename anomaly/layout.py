"""Where every per-series number lives: the columns of the detector's state tables and
the slots of the configuration vector the compiled kernel reads.

State is one row per series in three tables, so the kernel loads a series' whole state
in a few cache lines, keeps it in registers while it walks the series' readings and
writes it back once:

- ``f64`` (float64): times in ms since the epoch, counts, the values' levels and ranges:
  what needs 53 bits (a timestamp, a level whose noise is a millionth of it).
- ``f32`` (float32): scales, rates, sums, calibration statistics, event flags and the
  coarse-scale blocks. Every one of them is compared against a scale floor of at least
  1e-3 of the level, 16,000 times float32's rounding.
- ``tod`` (float32): per hour-of-day bin the level, scale and count (``3 * bins``).

The kernel computes in float64 and rounds only where it stores, so the interpreted run
(``NUMBA_DISABLE_JIT=1``) and the compiled one agree.
"""

from __future__ import annotations

from typing import Final

# ------------------------------------------------------------------ components
LIMITS: Final = 0
BASELINE: Final = 1
TIME_OF_DAY: Final = 2
LEVEL_SHIFT: Final = 3
FLATLINE: Final = 4
DROPOUT: Final = 5
K: Final = 6
"""Series-level sub-detectors, in the order of ``config.SUB_DETECTORS``."""

# ------------------------------------------------------------------ float64 columns
N: Final = 0  # readings the statistical detectors learned
LAST_X: Final = 1
LAST_TS: Final = 2
SINCE_TS: Final = 3  # when the current value began
FIRST_TS: Final = 4
HLEVEL: Final = 5  # Holt level
PERIOD: Final = 6  # learned reporting period (ms)
BASE_LEVEL: Final = 7
BASE_FAST: Final = 8
RANGE_MIN: Final = 9  # running range, for the new-extreme check
RANGE_MAX: Final = 10
HOLD_REF: Final = 11  # the baseline level before an accepted jump (NaN: none held)
HOLD_TS: Final = 12  # when that jump happened
RUN_LEVEL: Final = 13  # the baseline level when the current run of outliers began
EV_START: Final = 14  # K columns: when each component's open event began
F64_COLUMNS: Final = EV_START + K

# ------------------------------------------------------------------ float32 columns
TREND: Final = 0  # Holt trend per hour
LAST_SCORE: Final = 1
LIM_LEVEL: Final = 2
BASE_DEV: Final = 3
BASE_RUN: Final = 4
BASE_SLOW: Final = 5
TOD_SLOW: Final = 6
CUSUM_DEV: Final = 7
CUSUM_POS: Final = 8
CUSUM_NEG: Final = 9
FLAT_RATE: Final = 10
FLAT_RUN: Final = 11
REPORTED: Final = 12  # the evidence (decades) of the last onset report
REPORT_REF: Final = 13  # ... decayed since: what a new report must exceed
SINCE_REPORT: Final = 14  # readings since that report
HOLD_SCALE: Final = 15  # the baseline scale when the run of outliers began
EXC_POS: Final = 16
"""How far above the baseline level this series' outliers routinely reach: each larger
one lifts it halfway there, and it decays over ``onset_record_memory`` readings."""
EXC_NEG: Final = 17  # ... below it
EV_ACTIVE: Final = 18  # K columns
EV_PEAK: Final = EV_ACTIVE + K  # K columns
CAL: Final = EV_PEAK + K
"""Calibration blocks of ``CAL_WIDTH`` (long mean, long variance, short mean, count,
record of the short mean) per calibrated statistic, in the order of ``CAL_*`` below."""
CAL_WIDTH: Final = 5
CAL_BASELINE: Final = 0
CAL_TOD: Final = 1
CAL_SHIFT: Final = 2
CAL_COARSE: Final = 3  # one per coarse scale
COARSE_SCALES: Final = 2
CALIBRATED: Final = CAL_COARSE + COARSE_SCALES
COARSE: Final = CAL + CAL_WIDTH * CALIBRATED
"""Per coarse scale (blocks of ``coarse_blocks[j]`` readings), ``COARSE_WIDTH`` columns:
the running block sum and count, the level and scale of the block means, blocks seen,
the range of the block means, and the running sum of absolute steps ``|x - previous x|``
with the range of the blocks' mean step (their dispersion)."""
COARSE_WIDTH: Final = 10
F32_COLUMNS: Final = COARSE + COARSE_WIDTH * COARSE_SCALES

# Offsets inside a coarse block.
CB_SUM: Final = 0
CB_COUNT: Final = 1
CB_LEVEL: Final = 2
CB_DEV: Final = 3
CB_BLOCKS: Final = 4
CB_MIN: Final = 5
CB_MAX: Final = 6
CB_DSUM: Final = 7
CB_DMIN: Final = 8
CB_DMAX: Final = 9

TOD_WIDTH: Final = 3  # per bin: level, dev, count

_NAN = float("nan")

F64_FILL: tuple[float, ...] = (0.0, *([_NAN] * 13), *([0.0] * K))
_COARSE_NAN = {
    COARSE + j * COARSE_WIDTH + part
    for j in range(COARSE_SCALES)
    for part in (CB_LEVEL, CB_MIN, CB_MAX, CB_DMIN, CB_DMAX)
}
F32_FILL: tuple[float, ...] = tuple(
    0.5 if col == FLAT_RATE else _NAN if col in _COARSE_NAN else 0.0 for col in range(F32_COLUMNS)
)
TOD_FILL: tuple[float, ...] = (_NAN, 0.0, 0.0)

# Names of the columns (checkpoints, rules and tests read them by name).
F64_NAMES: tuple[str, ...] = (
    "core_n",
    "core_last_x",
    "core_last_ts",
    "core_since_ts",
    "core_first_ts",
    "core_hlevel",
    "core_period",
    "base_level",
    "base_fast",
    "range_min",
    "range_max",
    "base_hold_ref",
    "base_hold_ts",
    "base_run_level",
    *(f"ev_start_{k}" for k in range(K)),
)
F32_NAMES: tuple[str, ...] = (
    "core_trend",
    "core_last_score",
    "lim_level",
    "base_dev",
    "base_run",
    "base_slow",
    "tod_slow",
    "cusum_dev",
    "cusum_pos",
    "cusum_neg",
    "flat_rate",
    "flat_run",
    "onset_reported",
    "onset_report_ref",
    "onset_since_report",
    "base_hold_scale",
    "onset_excursion_pos",
    "onset_excursion_neg",
    *(f"ev_active_{k}" for k in range(K)),
    *(f"ev_peak_{k}" for k in range(K)),
    *(
        f"cal_{stat}_{name}"
        for name in ("baseline", "time_of_day", "level_shift", "coarse1", "coarse2")
        for stat in ("mean", "var", "short", "n", "record")
    ),
    *(
        f"coarse{j + 1}_{part}"
        for j in range(COARSE_SCALES)
        for part in ("sum", "count", "level", "dev", "blocks", "min", "max", "dsum", "dmin", "dmax")
    ),
)
assert len(F64_NAMES) == len(F64_FILL) == F64_COLUMNS
assert len(F32_NAMES) == len(F32_FILL) == F32_COLUMNS

# ------------------------------------------------------------------ metric table
# Per metric id: the catalogue's physics (``Detector`` fills it; NaN = none).
M_WARN_LOW: Final = 0
M_WARN_HIGH: Final = 1
M_CRIT_LOW: Final = 2
M_CRIT_HIGH: Final = 3
M_MARGIN: Final = 4
M_VALID_MIN: Final = 5
M_VALID_MAX: Final = 6
M_OFF: Final = 7
M_SENSOR: Final = 8  # the sensor's noise floor: half its stated accuracy
M_PERIOD: Final = 9  # catalogue period in ms (NaN: learn it)
M_STAT: Final = 10  # 1.0: a float metric the statistical detectors judge
M_COLUMNS: Final = 11
