"""Dead letters: rejected messages republished with why they were rejected.

Topic ``cw/v1/_deadletter/{reason}`` (subscribe to ``cw/v1/_deadletter/#`` for all); the
payload is JSON carrying the original topic, the reason code, field and detail of the
``DecodeError`` and the original payload (UTF-8 text, or base64 when it is not UTF-8).
"""

import base64
from typing import Literal

import msgspec

from telemetry import DEADLETTER_PREFIX, DecodeError


class DeadLetter(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The payload of a dead-letter message."""

    v: int
    topic: str
    reason: str
    field: str
    detail: str
    received_ms: int
    payload: str
    payload_encoding: Literal["utf-8", "base64"]

    def original_payload(self) -> bytes:
        if self.payload_encoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode()


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DeadLetter)


def deadletter_topic(reason: str) -> str:
    return f"{DEADLETTER_PREFIX}/{reason}"


def make_deadletter(
    topic: str, payload: bytes, error: DecodeError, received_ms: int
) -> tuple[str, bytes]:
    """(topic, payload) of the dead letter for a rejected message."""
    try:
        text, encoding = payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(payload).decode("ascii"), "base64"
    letter = DeadLetter(
        v=1,
        topic=topic,
        reason=error.reason,
        field=error.field,
        detail=error.detail,
        received_ms=received_ms,
        payload=text,
        payload_encoding=encoding,  # type: ignore[arg-type]
    )
    return deadletter_topic(error.reason), _encoder.encode(letter)


def decode_deadletter(payload: bytes) -> DeadLetter:
    return _decoder.decode(payload)
