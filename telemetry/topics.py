"""The MQTT topic layout: ``cw/v1/{ward}/{kind}/{device_id}/{channel}``."""

import re
from dataclasses import dataclass
from typing import Self

from telemetry.errors import TopicError
from telemetry.kinds import Channel, DeviceKind

TOPIC_PREFIX = "cw/v1"
SUBSCRIPTION = f"{TOPIC_PREFIX}/+/+/+/+"
"""What ingest subscribes to: every channel of every device."""
DEADLETTER_PREFIX = f"{TOPIC_PREFIX}/_deadletter"
"""Rejected messages are republished below this prefix with the reason."""

_ID = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}")


def is_valid_id(value: str) -> bool:
    """Ids and ward codenames: 1-64 chars of ``a-z 0-9 _ -``, starting alphanumeric.

    Narrow on purpose: ids become MQTT topic levels and InfluxDB tag values, so wildcards,
    separators, whitespace and quotes are kept out at the edge.
    """
    return _ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Topic:
    """One device topic, validated on construction."""

    ward: str
    kind: DeviceKind
    device_id: str
    channel: Channel

    def __post_init__(self) -> None:
        for name in ("ward", "device_id"):
            value = getattr(self, name)
            if not is_valid_id(value):
                raise TopicError(f"{name} {value!r} is not a valid id (a-z, 0-9, _ and -, 1-64)")
        if not isinstance(self.kind, DeviceKind):
            raise TopicError(f"kind {self.kind!r} is not a DeviceKind")
        if not isinstance(self.channel, Channel):
            raise TopicError(f"channel {self.channel!r} is not a Channel")

    def format(self) -> str:
        """The topic string."""
        return f"{TOPIC_PREFIX}/{self.ward}/{self.kind}/{self.device_id}/{self.channel}"

    def with_channel(self, channel: Channel) -> "Topic":
        """The same device's topic on another channel."""
        return Topic(self.ward, self.kind, self.device_id, channel)

    @classmethod
    def parse(cls, topic: str) -> Self:
        """Parse a topic string; ``TopicError`` says which level is wrong."""
        parts = topic.split("/")
        if len(parts) != 6 or f"{parts[0]}/{parts[1]}" != TOPIC_PREFIX:
            raise TopicError(
                f"topic {topic!r} is not {TOPIC_PREFIX}/<ward>/<kind>/<device>/<channel>"
            )
        _, _, ward, kind, device_id, channel = parts
        try:
            device_kind = DeviceKind(kind)
        except ValueError:
            raise TopicError(f"topic {topic!r}: unknown device kind {kind!r}") from None
        try:
            device_channel = Channel(channel)
        except ValueError:
            raise TopicError(f"topic {topic!r}: unknown channel {channel!r}") from None
        return cls(ward, device_kind, device_id, device_channel)

    def __str__(self) -> str:
        return self.format()
