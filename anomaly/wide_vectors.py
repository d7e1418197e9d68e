"""Let LLVM use 512-bit vectors where the processor has them.

LLVM's tuning for recent Intel processors prefers 256-bit vectors (older ones lowered
their clock for 512-bit code), so the kernel's lane loop (``anomaly/lanes.py``) came out
four float64 wide. Eight wide it takes 62 -> 48 ns a reading here. numba fixes the
features of its code generator when it first builds it, which any numba decorator with
a typing side (an ``@intrinsic``) does at import: so this runs first, from the package's
``__init__``, before any numba code of this package is defined.

The feature string is the host's own plus that preference; one the user set in
``NUMBA_CPU_FEATURES`` wins, and so does an interpreted run. numba keys its compile cache
by the features, so no code compiled for other features is loaded.
"""

from __future__ import annotations

import os


def prefer_wide_vectors() -> None:
    """Set ``NUMBA_CPU_FEATURES`` to the host's features without ``prefer-256-bit``."""
    if os.environ.get("NUMBA_CPU_FEATURES") or os.environ.get("NUMBA_DISABLE_JIT") == "1":
        return
    import llvmlite.binding as llvm  # noqa: PLC0415 - only when it applies
    import numba  # noqa: PLC0415

    features = llvm.get_host_cpu_features()
    if not features.get("avx512f"):
        return
    os.environ["NUMBA_CPU_FEATURES"] = features.flatten() + ",-prefer-256-bit"
    numba.config.reload_config()  # type: ignore[no-untyped-call]
