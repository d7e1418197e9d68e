"""The lane loop's vectorisable maths: ``ln`` within 2e-15 of libm's log, ``sqrt`` and
``r32`` exactly what libm and a float32 store give, the same bits compiled and
interpreted; the lane loop is vectorised; the 512-bit preference is set only where it
applies."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import llvmlite.binding as llvm
import numba
import numpy as np
import pytest

from anomaly import kernel, lanemath, wide_vectors
from anomaly.config import DetectorConfig
from anomaly.detector import kernel_params
from anomaly.lanes import COLUMNS, LANES

# Positive normal floats across the range the kernel passes (1 + |z| up to 1e12, a
# repeat rate from 1e-3, ratios of distances) and beyond.
SAMPLES = np.concatenate(
    [
        np.exp(np.random.default_rng(3).uniform(-700.0, 700.0, 20_000)),
        np.array([1.0, 1.0 + 1e-12, 2.0, math.sqrt(2.0), 0.999, 1e-3, 1e12 + 1.0, 10.0]),
    ]
)


@numba.njit
def _ln_all(xs: np.ndarray) -> np.ndarray:
    out = np.empty_like(xs)
    for i in range(xs.shape[0]):
        out[i] = lanemath.ln(xs[i])
    return out


@numba.njit
def _sqrt_r32_all(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    roots = np.empty_like(xs)
    rounded = np.empty_like(xs)
    for i in range(xs.shape[0]):
        roots[i] = lanemath.sqrt(xs[i])
        rounded[i] = lanemath.r32(xs[i])
    return roots, rounded


def test_ln_is_within_two_units_in_the_last_place_of_log() -> None:
    got = _ln_all(SAMPLES)
    want = np.log(SAMPLES)
    err = np.abs(got - want)
    assert (err <= 2e-15 * np.maximum(np.abs(want), 1.0)).all(), err.max()
    assert _ln_all(np.array([1.0]))[0] == 0.0


def test_sqrt_and_float32_rounding_are_exact() -> None:
    roots, rounded = _sqrt_r32_all(SAMPLES[SAMPLES < 1e300])
    xs = SAMPLES[SAMPLES < 1e300]
    np.testing.assert_array_equal(roots, np.sqrt(xs))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(rounded, xs.astype(np.float32).astype(np.float64))


_INTERPRETED = """
import sys
import numpy as np
from anomaly import lanemath
xs = np.load(sys.argv[1])
out = [lanemath.ln(float(x)) for x in xs] + [lanemath.sqrt(float(x)) for x in xs]
out += [lanemath.r32(float(x)) for x in xs]
np.save(sys.argv[2], np.array(out))
"""


def test_compiled_equals_interpreted(tmp_path: os.PathLike[str]) -> None:
    xs = SAMPLES[SAMPLES < 1e300][:2000]
    src, dst = f"{tmp_path}/xs.npy", f"{tmp_path}/out.npy"
    np.save(src, xs)
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    subprocess.run([sys.executable, "-c", _INTERPRETED, src, dst], env=env, check=True)
    roots, rounded = _sqrt_r32_all(xs)
    np.testing.assert_array_equal(np.load(dst), np.concatenate([_ln_all(xs), roots, rounded]))


def test_the_lane_loop_is_vectorised() -> None:
    """The per-reading arithmetic is one loop over the lanes that LLVM turned into
    vector instructions; a change that stops it (a libm call, an inner loop, an array
    passed to an inlined helper) shows here, not only as a slower benchmark."""
    step = numba.njit(error_model="numpy", nogil=True)(kernel._lane_step.py_func)
    buf = np.zeros(COLUMNS * LANES)
    params = kernel_params(DetectorConfig())
    step(buf, LANES, params, 3_600_000.0, kernel.switches_of(params))
    asm = next(iter(step.inspect_asm().values()))
    packed = sum(asm.count(f"{op}pd") for op in ("vmul", "vadd", "vsub", "vdiv"))
    wide = asm.count("ymm") + asm.count("zmm")
    assert packed >= 200, f"{packed} packed float64 operations"
    assert wide >= 1000, f"{wide} vector register uses"


@pytest.mark.parametrize(
    ("env", "avx512", "want"),
    [
        ({}, True, "host,-prefer-256-bit"),
        ({}, False, None),
        ({"NUMBA_CPU_FEATURES": "+avx2"}, True, "+avx2"),
        ({"NUMBA_DISABLE_JIT": "1"}, True, None),
    ],
)
def test_the_wide_vector_preference_applies_only_where_it_should(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], avx512: bool, want: str | None
) -> None:
    class Features(dict[str, bool]):
        def flatten(self) -> str:
            return "host"

    # setenv first: monkeypatch then restores the variables' absence after the test. The
    # code under test sets them in os.environ itself, and a leaked fake feature string
    # ("host,...") made every later compiling subprocess abort in LLVM.
    for name in ("NUMBA_CPU_FEATURES", "NUMBA_DISABLE_JIT"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(llvm, "get_host_cpu_features", lambda: Features(avx512f=avx512))
    monkeypatch.setattr(numba.config, "reload_config", lambda: None)
    wide_vectors.prefer_wide_vectors()
    assert os.environ.get("NUMBA_CPU_FEATURES") == want
