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

    @intrinsic
    def bits(_typingctx: Any, x: Any) -> Any:
        """The float64's bits as an int64 (a bitcast)."""
        if x != types.float64:
            return None

        def codegen(_context: Any, builder: Any, _sig: Any, args: Any) -> Any:
            return builder.bitcast(args[0], ir.IntType(64))

        return types.int64(types.float64), codegen

    @intrinsic
    def from_bits(_typingctx: Any, b: Any) -> Any:
        """The float64 of these bits (a bitcast)."""
        if b != types.int64:
            return None

        def codegen(_context: Any, builder: Any, _sig: Any, args: Any) -> Any:
            return builder.bitcast(args[0], ir.DoubleType())

        return types.float64(types.int64), codegen

    @inline
    def r32(x: float) -> float:
        """Rounded to float32 (as a store into a float32 column rounds)."""
        return float(np.float32(x))


@inline
def ln(x: float) -> float:
    """Natural logarithm of a positive normal float (relative error < 1e-15).

    ``x = m * 2**e`` with ``m`` in [sqrt(1/2), sqrt(2)); ``ln m = 2 atanh(s)``,
    ``s = (m - 1) / (m + 1)``, ``|s| < 0.172``: nine terms of the series. Not for 0,
    negatives, NaN or subnormals (callers pass none); infinity gives ~709.8.
    """
    b = bits(x)
    e = (b >> 52) - 1023
    m = from_bits((b & _MANTISSA) | _ONE_BITS)
    if m > _SQRT2:
        m *= 0.5
        e += 1
    s = (m - 1.0) / (m + 1.0)
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
    return float(e) * _LN2 + 2.0 * s * series
