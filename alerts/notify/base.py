"""What every notifier shares: the message body and the result of a delivery."""

from dataclasses import dataclass
from typing import Protocol

import msgspec

from alerts.model import AlertChange

_encoder = msgspec.json.Encoder()


def change_json(change: AlertChange) -> bytes:
    """The JSON body crews receive: the change and the alert after it (times in epoch ms).

    ``{"id", "alert_id", "kind", "at_ms", "detail", "actor", "notify", "ward",
    "alert": {"id", "type", "ward", "device", "severity", "state", ...}}``
    """
    return _encoder.encode(change)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivered: bool
    attempts: int
    error: str = ""


class Notifier(Protocol):
    """Sends one change somewhere, retrying as it sees fit; never raises for delivery
    failures (they are results, logged by the dispatcher)."""

    channel: str
    """``webhook``, ``mqtt``…: the delivery log's channel column."""

    def target_of(self, change: AlertChange) -> str:
        """Where this change goes (URL, topic), for the delivery log."""
        ...

    async def send(self, change: AlertChange) -> DeliveryResult: ...


def backoff_delays(attempts: int, base_s: float, max_s: float) -> list[float]:
    """Sleeps between ``attempts`` tries: base, 2·base, 4·base… capped at ``max_s``."""
    return [min(base_s * 2**i, max_s) for i in range(max(attempts - 1, 0))]
