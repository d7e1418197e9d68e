"""Notifying alert changes and logging every delivery.

:func:`notify_follower` is how citywatch runs a notifier: a follower of the store's change
feed with its own durable cursor (:mod:`alerts.feed`), so a crash loses no notification
and a notifier whose receiver is down holds back no other. :class:`Dispatcher` notifies
a given list of changes at once (tests, tools)."""

import asyncio
import logging
from collections.abc import Sequence

from alerts.feed import FeedFollower, Handled, consumer_name
from alerts.model import AlertChange, DeliveryAttempt
from alerts.notify.base import DeliveryResult, Notifier
from alerts.store import AlertStore

log = logging.getLogger(__name__)


async def deliver(
    notifier: Notifier, change: AlertChange
) -> tuple[DeliveryAttempt, DeliveryResult]:
    """Send one change (the notifier retries as it sees fit); the log row and the result."""
    try:
        result = await notifier.send(change)
    except Exception as exc:  # a notifier bug must not lose the log row
        log.exception("%s notifier raised", notifier.channel)
        result = DeliveryResult(False, 1, f"{type(exc).__name__}: {exc}")
    if not result.delivered:
        log.warning(
            "%s delivery of change %d failed after %d attempts%s: %s",
            notifier.channel,
            change.id,
            result.attempts,
            "; will try again" if result.retryable else "",
            result.error,
        )
    attempt = DeliveryAttempt(
        change,
        channel=notifier.channel,
        target=notifier.target_of(change),
        delivered=result.delivered,
        attempts=result.attempts,
        error=result.error,
    )
    return attempt, result


def notify_follower(
    store: AlertStore,
    notifier: Notifier,
    *,
    poll_s: float = 1.0,
    backoff_s: float = 1.0,
    max_backoff_s: float = 30.0,
) -> FeedFollower:
    """A follower of the change feed that sends its ``notify`` changes with ``notifier``.

    Its cursor is ``notify:<channel>:<endpoint>``. Changes of a page go out concurrently;
    the cursor then moves to just before the first change whose delivery failed but may
    succeed later (receiver down, 5xx), which is tried again with backoff, with those
    after it (at least once: a receiver deduplicates on the change id). A change the
    receiver refused for good (4xx) is logged as failed and passed.
    """

    async def handle(changes: list[AlertChange]) -> Handled:
        done = await asyncio.gather(*(deliver(notifier, c) for c in changes))
        retry = [a.change.id for a, r in done if not r.delivered and r.retryable]
        return Handled(min(retry) if retry else None, [a for a, _ in done])

    return FeedFollower(
        store,
        consumer_name("notify", notifier.channel, notifier.endpoint),
        handle,
        notify_only=True,
        poll_s=poll_s,
        backoff_s=backoff_s,
        max_backoff_s=max_backoff_s,
    )


class Dispatcher:
    """``await dispatcher.dispatch(await store.apply_detections(...))``: sends the given
    changes now, once, and logs each delivery (no cursor: see :func:`notify_follower`).

    Only ``notify=True`` changes go to the notifiers: silences, flapping and incident
    grouping were already decided by the store, whose change feed (``changes_since``) the
    SSE stream reads, silenced and grouped changes included.
    """

    def __init__(
        self,
        store: AlertStore,
        notifiers: Sequence[Notifier] = (),
    ) -> None:
        self.store = store
        self.notifiers = list(notifiers)
        self.delivered = 0
        self.failed = 0

    async def dispatch(self, changes: Sequence[AlertChange]) -> None:
        jobs = [
            deliver(notifier, change)
            for change in changes
            if change.notify
            for notifier in self.notifiers
        ]
        done = await asyncio.gather(*jobs)
        self.delivered += sum(1 for _, r in done if r.delivered)
        self.failed += sum(1 for _, r in done if not r.delivered)
        # One log transaction for the whole burst, not one per delivery.
        await self.store.record_deliveries([a for a, _ in done])
