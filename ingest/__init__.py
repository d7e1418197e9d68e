"""citywatch ingest: MQTT to InfluxDB, fast, nothing lost.

Source → decode/validate → batch → durable write (InfluxDB or spool) → ack → sinks.
See ``ingest.service`` for the composition, ``ingest.source`` for the MQTT session and
acks, ``ingest.writer`` and ``ingest.spool`` for durability, ``ingest.order`` for the
duplicate / out-of-order policy, ``ingest.liveness`` for online/offline.
"""

from ingest.config import IngestSettings, load_settings
from ingest.deadletter import DeadLetter, decode_deadletter
from ingest.liveness import LivenessChange, LivenessTracker
from ingest.service import IngestService
from ingest.sinks import BatchSink, LivenessSink

__all__ = [
    "BatchSink",
    "DeadLetter",
    "IngestService",
    "IngestSettings",
    "LivenessChange",
    "LivenessSink",
    "LivenessTracker",
    "decode_deadletter",
    "load_settings",
]
