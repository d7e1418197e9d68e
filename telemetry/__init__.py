"""The wire contract: device kinds, metric catalogue, topic layout, payloads and batches.

Everything else in citywatch speaks this vocabulary; this package imports nothing of ours.
"""

from telemetry.batch import ReadingBatch
from telemetry.catalogue import CATALOGUE, METRICS_BY_ID, Metric, metric, metric_id
from telemetry.devices import DeviceInfo
from telemetry.errors import DecodeError, TopicError
from telemetry.kinds import Channel, DeviceKind
from telemetry.payload import (
    MAX_PAYLOAD_BYTES,
    DecodeLimits,
    Event,
    EventType,
    Message,
    Report,
    Status,
    decode_event,
    decode_message,
    decode_report,
    decode_status,
    encode,
)
from telemetry.topics import DEADLETTER_PREFIX, SUBSCRIPTION, TOPIC_PREFIX, Topic, is_valid_id

__all__ = [
    "CATALOGUE",
    "DEADLETTER_PREFIX",
    "MAX_PAYLOAD_BYTES",
    "METRICS_BY_ID",
    "SUBSCRIPTION",
    "TOPIC_PREFIX",
    "Channel",
    "DecodeError",
    "DecodeLimits",
    "DeviceInfo",
    "DeviceKind",
    "Event",
    "EventType",
    "Message",
    "Metric",
    "ReadingBatch",
    "Report",
    "Status",
    "Topic",
    "TopicError",
    "decode_event",
    "decode_message",
    "decode_report",
    "decode_status",
    "encode",
    "is_valid_id",
    "metric",
    "metric_id",
]
