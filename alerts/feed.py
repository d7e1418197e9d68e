"""Consumers of the store's change feed, each with a durable cursor.

The change table is the one outbox: the InfluxDB export and every notifier follow it with
a :class:`FeedFollower` of their own, named by what they feed (``export:influx:citywatch``,
``notify:webhook:https://…``). A follower reads the changes past its stored cursor, hands
them to its handler and advances the cursor only once the handler says they are done,
in the transaction that logs the handler's deliveries. A crash (even ``kill -9``) between
the work and the cursor means the work is repeated after the restart: at least once, with
the same change ids, which receivers use to deduplicate. A consumer failing (its receiver
down) retries with backoff from its own cursor and holds back no other consumer.

A consumer's first start ever begins at the feed's head: a new install, or a notifier
added later, does not replay the history that is already in the store.
"""

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from alerts.model import AlertChange, DeliveryAttempt
from alerts.store import AlertStore
from telemetry.backoff import Backoff

log = logging.getLogger(__name__)

MAX_CONSUMER_LEN = 255


@dataclass(frozen=True, slots=True)
class Handled:
    """What a handler did with the changes it was given."""

    failed_at: int | None = None
    """The id of the first change not done, to be tried again (``None``: all done)."""
    deliveries: Sequence[DeliveryAttempt] = ()
    """Delivery-log rows, written with the cursor."""


Handler = Callable[[list[AlertChange]], Awaitable[Handled]]


def consumer_name(*parts: str) -> str:
    """``"notify:webhook:https://…"`` from its parts; names longer than the cursor table's
    column keep their start and end in a digest's stead."""
    name = ":".join(parts)
    if len(name) <= MAX_CONSUMER_LEN:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: MAX_CONSUMER_LEN - 17]}~{digest}"


class FeedFollower:
    """``await follower.run()`` follows the feed until cancelled or :meth:`drain`-ed.

    ``notify_only``: the handler gets only the changes marked ``notify`` (the cursor still
    moves past the others). Store errors and failed pages are retried with backoff
    (full-jitter exponential backoff from ``backoff_s`` up to ``max_backoff_s``);
    :meth:`poke` looks at once.
    """

    def __init__(
        self,
        store: AlertStore,
        consumer: str,
        handle: Handler,
        *,
        notify_only: bool = False,
        batch: int = 500,
        poll_s: float = 1.0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        if len(consumer) > MAX_CONSUMER_LEN:
            raise ValueError(f"consumer name longer than {MAX_CONSUMER_LEN}: {consumer!r}")
        self.store = store
        self.consumer = consumer
        self.handle = handle
        self.notify_only = notify_only
        self.batch = batch
        self.poll_s = poll_s
        self._backoff = Backoff(backoff_s, max_backoff_s)
        self.position: int | None = None
        """The stored cursor as this follower last wrote or read it (None: not started)."""
        self.failing = False
        """The last round failed; the follower is waiting to try again."""
        self.handled = 0
        """Changes handed to the handler and done."""
        self._poked = asyncio.Event()
        self._draining = False

    def poke(self) -> None:
        """New changes were committed: look now rather than at the next poll."""
        self._poked.set()

    def caught_up(self, head: int) -> bool:
        """Whether every change up to ``head`` is done (or the follower is failing and
        waiting to retry: nothing it can do now)."""
        return self.failing or (self.position is not None and self.position >= head)

    async def open(self) -> int:
        """Read (on the first start ever: create at the head) the stored cursor. Call it
        before this process writes changes, lest a first start skip its own changes
        (:meth:`run` calls it when it was not)."""
        self.position = await self.store.open_cursor(self.consumer)
        log.info("%s follows the change feed from change %d", self.consumer, self.position)
        return self.position

    async def run(self) -> None:
        while True:
            final = self._draining  # a round begun after the drain request is the last
            try:
                if self.position is None:
                    await self.open()
                done = await self.catch_up()
            except Exception:  # the store is down or busy: retry from the stored cursor
                log.exception("%s: following the change feed failed; retrying", self.consumer)
                done = False
            self.failing = not done
            if final:
                return
            if done:
                self._backoff.reset()
            wait = self.poll_s if done else self._backoff.next_delay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), wait)
            self._poked.clear()

    async def drain(self, task: "asyncio.Task[None]", timeout_s: float) -> None:
        """Let ``task`` (this follower's :meth:`run`) do one last round, then end it
        (cancelled after ``timeout_s``: what is left waits for the next start)."""
        self._draining = True
        self.poke()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            log.warning("%s: stopped before it caught up; resumes at the next start", self.consumer)
        except Exception:  # reported by run's own log
            pass
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def catch_up(self) -> bool:
        """Handle every change past the cursor; ``False`` if the handler failed one."""
        if self.position is None:
            await self.open()
        assert self.position is not None
        while True:
            page = await self.store.feed_since(self.position, self.batch)
            if not page:
                return True
            wanted = [c for c in page if c.notify] if self.notify_only else page
            handled = await self.handle(wanted) if wanted else Handled()
            if handled.failed_at is None:
                done_to = page[-1].id
                self.handled += len(wanted)
            else:
                done_to = handled.failed_at - 1
                self.handled += sum(1 for c in wanted if c.id < handled.failed_at)
            done_to = max(done_to, self.position)
            if done_to > self.position or handled.deliveries:
                await self.store.advance_cursor(self.consumer, done_to, handled.deliveries)
                self.position = done_to
            if handled.failed_at is not None:
                return False
            if len(page) < self.batch:
                return True
