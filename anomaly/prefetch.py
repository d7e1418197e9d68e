"""Memory access for the compiled code: a software prefetch of a table's row, and
unsigned indices.

The kernel walks a batch series by series; in a large city each series' state rows are
cold, and the per-reading loop waits for each miss in turn (a reading's work is too long
for the processor to run ahead into the next one). Asking for the rows of a series a few
readings ahead lets those misses overlap with the work in between.

numba wraps a signed index that could be negative (a shift, an and and an add at every
access), and LLVM cannot rule that out for an index read from an array (a slot, a
grouped row): ``unsigned`` marks one that is not.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

LINE = 64
"""Bytes of a cache line."""


def _prefetch_codegen(write: int) -> Any:
    """Code for ``llvm.prefetch`` (high locality) of byte ``offset`` of ``table[row]``;
    ``write``: 1 asks for the line to be written (``prefetchw``: it arrives owned, with
    no second request when the store comes), 0 to be read."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> None:
        table_ty = signature.args[0]
        arr = context.make_array(table_ty)(context, builder, args[0])
        stride = builder.extract_value(arr.strides, 0)
        row_at = builder.mul(context.cast(builder, args[1], signature.args[1], types.intp), stride)
        at = builder.add(row_at, context.cast(builder, args[2], signature.args[2], types.intp))
        base = builder.ptrtoint(arr.data, cgutils.intp_t)
        i8p = ir.IntType(8).as_pointer()
        ptr = builder.inttoptr(builder.add(base, at), i8p)
        i32 = ir.IntType(32)
        fn_type = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
            builder.module, fn_type, "llvm.prefetch.p0"
        )
        builder.call(fn, [ptr, i32(write), i32(3), i32(1)])

    return codegen


@intrinsic
def _prefetch_at(_typingctx: Any, table: Any, row: Any, offset: Any) -> Any:
    """Prefetch byte ``offset`` of ``table[row]`` to read it."""
    if not (isinstance(table, types.Array) and table.ndim == 2):
        return None
    return types.void(table, row, offset), _prefetch_codegen(0)


@intrinsic
def _prefetch_for_write_at(_typingctx: Any, table: Any, row: Any, offset: Any) -> Any:
    """Prefetch byte ``offset`` of ``table[row]`` (a 1-D array: of item ``row``) to
    write it."""
    if not (isinstance(table, types.Array) and table.ndim in (1, 2)):
        return None
    return types.void(table, row, offset), _prefetch_codegen(1)


if numba.config.DISABLE_JIT:  # type: ignore[attr-defined]

    def prefetch_row(table: Any, row: int) -> None:
        """Interpreted: nothing to do (a hint changes no result)."""

    def prefetch_item(table: Any, row: int, col: int) -> None:
        """Interpreted: nothing to do."""

    def prefetch_item_for_write(table: Any, row: int, col: int) -> None:
        """Interpreted: nothing to do."""

    def prefetch_for_write(array: Any, i: int) -> None:
        """Interpreted: nothing to do."""

else:

    @numba.njit(cache=True, nogil=True, inline="always")
    def prefetch_row(table: Any, row: int) -> None:
        """Prefetch every cache line of ``table[row]`` (a row need not start a line)."""
        size = table.shape[1] * table.itemsize
        for offset in range(0, size, LINE):
            _prefetch_at(table, row, offset)  # type: ignore[call-arg]  # typing context: numba's
        _prefetch_at(table, row, size - 1)  # type: ignore[call-arg]

    @numba.njit(cache=True, nogil=True, inline="always")
    def prefetch_item_for_write(table: Any, row: int, col: int) -> None:
        """Prefetch the cache line of ``table[row, col]``, which is about to be written
        (a row placed at random: the line comes owned, without a second request)."""
        _prefetch_for_write_at(table, row, col * table.itemsize)  # type: ignore[call-arg]

    @numba.njit(cache=True, nogil=True, inline="always")
    def prefetch_for_write(array: Any, i: int) -> None:
        """Prefetch the cache line of item ``i`` of a 1-D ``array``, about to be written."""
        _prefetch_for_write_at(array, i, 0)  # type: ignore[call-arg]

    @numba.njit(cache=True, nogil=True, inline="always")
    def prefetch_item(table: Any, row: int, col: int) -> None:
        """Prefetch the cache line of ``table[row, col]``."""
        _prefetch_at(table, row, col * table.itemsize)  # type: ignore[call-arg]


@numba.njit(cache=True, nogil=True, inline="always")
def unsigned(i: int) -> Any:
    """``i`` (``>= 0``) as an index numba does not wrap: a series' ~200 state columns
    moved in and out of a lane paid the wrap at each."""
    return np.uint64(i)
