"""Where accepted readings go besides InfluxDB: the sink protocol.

Telegraf-like: the pipeline owns batching, durability and acks; a sink only handles
batches. ``BatchSink``s (the detector, plugged in by ``citywatch``) receive each batch of
accepted readings after it is durable (written to InfluxDB or the spool) and acknowledged,
in arrival order, on ingest's sink thread (next to the writer thread, so scoring overlaps
the next write). A sink that raises is logged and counted and does not stop ingest; it must
not block for long (two batches wait for it, then the writer waits too).
"""

from collections.abc import Sequence
from typing import Protocol

from ingest.liveness import LivenessChange
from telemetry import ReadingBatch


class BatchSink(Protocol):
    """Takes a batch of accepted readings (columnar; booleans as 0.0/1.0)."""

    def handle(self, batch: ReadingBatch) -> None: ...


class LivenessSink(Protocol):
    """Takes device online/offline transitions (the wiring layer turns them into alerts)."""

    def handle_liveness(self, changes: Sequence[LivenessChange]) -> None: ...
