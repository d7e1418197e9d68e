"""Reports a device sent that never arrived, told from its ``seq`` counter.

A device numbers its reports since it booted. A jump in that number is reports lost on
the way (a broker that dropped them when its queue for us was full, a device buffer
that overflowed): counted and logged with the device and the gap, since nothing else
would say so. A report older than the newest one that fills a counted gap (a late
delivery) takes it back. A smaller number on a newer report is a reboot: the count
restarts, nothing is missing.
"""

import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

LOG_EVERY_S = 60.0
"""At most one gap line per device this often (a broker outage would name thousands)."""


@dataclass(slots=True)
class _Device:
    seq: int
    ts_ms: int
    missing: int = 0
    logged_at: float = -LOG_EVERY_S


class SeqGaps:
    """Per device: the newest report's ``seq`` and time, and the gap it still owes."""

    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}

    def observe(self, device: str, seq: int, ts_ms: int) -> int:
        """The change of the missing-report count this accepted report brings."""
        state = self._devices.get(device)
        if state is None:
            self._devices[device] = _Device(seq, ts_ms)
            return 0
        if ts_ms <= state.ts_ms:  # late: it may fill a counted gap
            if seq < state.seq and state.missing > 0:
                state.missing -= 1
                return -1
            return 0
        if seq <= state.seq:  # newer report, smaller count: the device restarted
            state.seq, state.ts_ms, state.missing = seq, ts_ms, 0
            return 0
        gap = seq - state.seq - 1
        state.seq, state.ts_ms = seq, ts_ms
        if gap > 0:
            state.missing += gap
            now = time.monotonic()
            if now - state.logged_at >= LOG_EVERY_S:
                state.logged_at = now
                log.warning(
                    "%s: %d report(s) missing before seq %d (lost before ingest: check the "
                    "broker's queue limits for ingest's session)",
                    device,
                    gap,
                    seq,
                )
        return gap
