"""Compile (or load) the detector's kernel before the first batch, and say which."""

from __future__ import annotations

import logging

from anomaly import prepare_kernel

log = logging.getLogger("citywatch.detector")


def prepare() -> None:
    """Compile the kernel on the first run of an environment (tens of seconds, logged),
    load it from the cache on later ones (seconds)."""
    log.info("preparing the detector kernel")
    ready = prepare_kernel()
    if ready.compiled:
        log.info(
            "detector kernel compiled in %.1f s (first run with this environment; cached "
            "under %s, so later starts take seconds)",
            ready.seconds,
            ready.cache_dir,
        )
    else:
        log.info("detector kernel loaded from its cache in %.1f s", ready.seconds)
