"""In-process fan-out of alert changes to live subscribers (the SSE endpoint).

Each subscriber has a bounded queue. A subscriber that falls behind is not allowed to
grow memory or to slow the others: its subscription is cut with
:class:`SubscriberLaggedError`, and it resumes from the store's change feed
(``store.changes_since(last_id)``) — nothing is lost, because every change is stored
before it is broadcast.
"""

import asyncio
import contextlib
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from alerts.model import AlertChange


class SubscriberLaggedError(RuntimeError):
    """The subscriber's queue overflowed; resume from ``last_id`` via the change feed."""

    def __init__(self, last_id: int) -> None:
        super().__init__(f"subscriber fell behind after change {last_id}")
        self.last_id = last_id


class Subscription:
    """Async iterator of changes for the subscribed wards (``None``: all)."""

    def __init__(self, broadcaster: "Broadcaster", wards: frozenset[str] | None, size: int):
        self._broadcaster = broadcaster
        self.wards = wards
        self._queue: asyncio.Queue[AlertChange | None] = asyncio.Queue(size)
        self.lagged = False
        self.last_id = 0
        """Id of the last change handed to the consumer."""

    def wants(self, change: AlertChange) -> bool:
        return self.wards is None or change.ward in self.wards

    def offer(self, change: AlertChange) -> bool:
        """Queue a change; False (and cut off) when the queue is full."""
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            self.lagged = True
            return False
        return True

    async def get(self) -> AlertChange:
        if self.lagged and self._queue.empty():
            raise SubscriberLaggedError(self.last_id)
        change = await self._queue.get()
        if change is None:  # woken up by close()
            raise StopAsyncIteration
        self.last_id = change.id
        return change

    def close(self) -> None:
        self._broadcaster.unsubscribe(self)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> AlertChange:
        return await self.get()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()


class Broadcaster:
    """``publish`` never blocks; ``subscribe`` returns a :class:`Subscription`."""

    def __init__(self, queue_size: int = 1000) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self.lagged_total = 0
        """Subscriptions cut off for lagging (a counter for /metrics)."""

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self, wards: Iterable[str] | None = None) -> Subscription:
        sub = Subscription(self, None if wards is None else frozenset(wards), self.queue_size)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def publish(self, changes: Iterable[AlertChange]) -> None:
        for change in changes:
            for sub in list(self._subscribers):
                if sub.wants(change) and not sub.offer(change):
                    self.lagged_total += 1
                    self.unsubscribe(sub)
