"""What every notifier shares: the message body and the result of a delivery."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import msgspec

from alerts.model import AlertChange
from telemetry.backoff import Backoff

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()


def idempotency_key(change: AlertChange) -> str:
    """``citywatch-<change id>``: the same for every delivery of one change, retries and
    repeats after a crash included, so a receiver can deduplicate on it."""
    return f"citywatch-{change.id}"


def change_json(change: AlertChange) -> bytes:
    """The JSON body crews receive: the change and the alert after it (times in epoch ms).
    The body's ``id`` is the change id (stable across redeliveries, as the feed's changes
    carry the alert as their transaction left it: a repeat is the same bytes).

    ``{"id", "alert_id", "kind", "at_ms", "detail", "actor", "notify", "ward",
    "alert": {"id", "type", "ward", "device", "severity", "state", ...}}``
    """
    return _encoder.encode(change)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivered: bool
    attempts: int
    error: str = ""
    retryable: bool = True
    """For a failure: worth trying again later (the receiver was unreachable or busy).
    ``False``: the receiver refused this change for good; the feed moves past it."""


@dataclass(frozen=True, slots=True)
class TryAgain:
    """One attempt failed in a way the next may not: why, and how long the receiver asked
    to wait (``None``: the next step of the backoff)."""

    error: str
    wait_s: float | None = None


async def with_retries(
    attempt: Callable[[int], Awaitable[DeliveryResult | TryAgain]],
    *,
    attempts: int,
    backoff: Backoff,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> DeliveryResult:
    """Every channel's retry loop: ``attempt(n)`` up to ``attempts`` times; a
    ``DeliveryResult`` ends it (delivered, or refused for good), a ``TryAgain`` waits the
    receiver's wait or the backoff's next delay. ``what`` names the target in the log."""
    error = ""
    for n in range(1, attempts + 1):
        outcome = await attempt(n)
        if isinstance(outcome, DeliveryResult):
            return outcome
        error = outcome.error
        if n < attempts:
            delay = backoff.next_delay() if outcome.wait_s is None else outcome.wait_s
            log.info("%s attempt %d failed (%s); retry in %.1fs", what, n, error, delay)
            await sleep(delay)
    return DeliveryResult(False, attempts, error)


class Notifier(Protocol):
    """Sends one change somewhere, retrying as it sees fit; never raises for delivery
    failures (they are results, logged by the dispatcher)."""

    channel: str
    """``webhook``, ``mqtt``…: the delivery log's channel column."""

    endpoint: str
    """Where this notifier sends (URL, ``host:port``): with the channel, it names the
    notifier's cursor in the change feed."""

    def target_of(self, change: AlertChange) -> str:
        """Where this change goes (URL, topic), for the delivery log."""
        ...

    async def send(self, change: AlertChange) -> DeliveryResult: ...
