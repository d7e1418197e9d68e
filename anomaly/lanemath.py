"""Scalar maths the compiled kernel can vectorise across lanes.

The kernel runs several series side by side, one per SIMD lane (``anomaly/lanes.py``),
and LLVM vectorises its per-lane loop only if every operation in it has a vector form.
numba lowers ``math.sqrt`` and ``math.log`` to calls of libm, which have none here (no
SVML), so one call in the loop keeps the whole of it scalar. These are the replacements:

- ``sqrt``: LLVM's own square root, the same correctly rounded IEEE result as libm's.
- ``ln``: the natural logarithm from the float's exponent and an odd series in
  ``s = (m - 1) / (m + 1)`` of its mantissa, relative error below 1e-15 for positive
  normal numbers; only ``+ - * /``, so the interpreted reference computes it bit for bit.
- ``r32``: rounding to float32 and back, what storing into a float32 state column did.

Interpreted (``NUMBA_DISABLE_JIT=1``) each has a plain Python form with the same result.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)
_MANTISSA = (1 << 52) - 1
_ONE_BITS = 1023 << 52

inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


if numba.config.DISABLE_JIT:  # type: ignore[attr-defined]

    def sqrt(x: float) -> float:
        """Interpreted: IEEE square root (NaN for a negative)."""
        return math.sqrt(x) if x >= 0.0 else math.nan

    def bits(x: float) -> int:
        """The float64's bits as an int64."""
        return int(struct.unpack("<q", struct.pack("<d", x))[0])

    def from_bits(b: int) -> float:
        """The float64 of these bits."""
        return float(struct.unpack("<d", struct.pack("<q", b))[0])

    def r32(x: float) -> float:
        """Rounded to float32 (as a store into a float32 column rounds)."""
        with np.errstate(over="ignore"):
            return float(np.float32(x))

else:

    @intrinsic
    def sqrt(_typingctx: Any, x: Any) -> Any:
        """``llvm.sqrt.f64``: vectorisable, unlike numba's call of libm's ``sqrt``."""
        if x != types.float64:
            return None

        def codegen(_context: Any, builder: Any, _sig: Any, args: Any) -> Any:
            fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()])
            module = builder.module
            fn = module.globals.get("llvm.sqrt.f64") or ir.Function(module, fnty, "llvm.sqrt.f64")
            return builder.call(fn, args)

        return types.float64(types.float64), codegen

    def _bitcast(name: str, source: Any, target: Any, target_ir: Any, doc: str) -> Any:
        """An intrinsic ``name`` reinterpreting a ``source`` scalar's bits as ``target``."""

        def typer(_typingctx: Any, x: Any) -> Any:
            if x != source:
                return None

            def codegen(_context: Any, builder: Any, _sig: Any, args: Any) -> Any:
                return builder.bitcast(args[0], target_ir)

            return target(source), codegen

        typer.__name__ = typer.__qualname__ = name
        typer.__doc__ = doc
        return intrinsic(typer)

    bits = _bitcast(
        "bits", types.float64, types.int64, ir.IntType(64), "The float64's bits as an int64."
    )
    from_bits = _bitcast(
        "from_bits", types.int64, types.float64, ir.DoubleType(), "The float64 of these bits."
    )

    @inline
    def r32(x: float) -> float:
        """Rounded to float32 (as a store into a float32 column rounds)."""
        return float(np.float32(x))


@inline
def _reduce(x: float) -> tuple[float, float]:
    """``x = m * 2**e``, ``m`` in [sqrt(1/2), sqrt(2)): (e, m)."""
    b = bits(x)
    e = (b >> 52) - 1023
    m = from_bits((b & _MANTISSA) | _ONE_BITS)
    if m > _SQRT2:
        m *= 0.5
        e += 1
    return float(e), m


@inline
def _ln_of(e: float, m: float, inv: float) -> float:
    """``ln(m * 2**e)`` given ``inv = 1 / (m + 1)``: ``2 atanh(s)``, ``s = (m - 1) inv``,
    nine terms of its series."""
    s = (m - 1.0) * inv
    s2 = s * s
    series = 1.0 / 17.0
    series = series * s2 + 1.0 / 15.0
    series = series * s2 + 1.0 / 13.0
    series = series * s2 + 1.0 / 11.0
    series = series * s2 + 1.0 / 9.0
    series = series * s2 + 1.0 / 7.0
    series = series * s2 + 1.0 / 5.0
    series = series * s2 + 1.0 / 3.0
    series = series * s2 + 1.0
    return e * _LN2 + 2.0 * s * series


@inline
def ln(x: float) -> float:
    """Natural logarithm of a positive normal float (relative error < 2e-15).

    ``x = m * 2**e`` with ``m`` in [sqrt(1/2), sqrt(2)); ``ln m = 2 atanh(s)``,
    ``s = (m - 1) / (m + 1)``, ``|s| < 0.172``: nine terms of the series. Not for 0,
    negatives, NaN or subnormals (callers pass none); infinity gives ~709.8.
    """
    e, m = _reduce(x)
    return _ln_of(e, m, 1.0 / (m + 1.0))


@inline
def ln6(
    x: tuple[float, float, float, float, float, float],
) -> tuple[float, float, float, float, float, float]:
    """``ln`` of six floats with one division: the product of the six ``m + 1`` (each
    in [1.7, 2.5)) is inverted once and each reciprocal recovered by multiplications
    (Montgomery's trick), the divider being the lane loop's bottleneck. Each result is
    within a few units in the last place of ``ln``'s."""
    e0, m0 = _reduce(x[0])
    e1, m1 = _reduce(x[1])
    e2, m2 = _reduce(x[2])
    e3, m3 = _reduce(x[3])
    e4, m4 = _reduce(x[4])
    e5, m5 = _reduce(x[5])
    d0, d1, d2, d3, d4, d5 = m0 + 1.0, m1 + 1.0, m2 + 1.0, m3 + 1.0, m4 + 1.0, m5 + 1.0
    p1 = d0 * d1
    p2 = p1 * d2
    p3 = p2 * d3
    p4 = p3 * d4
    inv = 1.0 / (p4 * d5)
    r5 = inv * p4
    inv *= d5
    r4 = inv * p3
    inv *= d4
    r3 = inv * p2
    inv *= d3
    r2 = inv * p1
    inv *= d2
    r1 = inv * d0
    r0 = inv * d1
    return (
        _ln_of(e0, m0, r0),
        _ln_of(e1, m1, r1),
        _ln_of(e2, m2, r2),
        _ln_of(e3, m3, r3),
        _ln_of(e4, m4, r4),
        _ln_of(e5, m5, r5),
    )
