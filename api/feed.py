"""Wakes SSE streams when the store's change feed grows.

One watcher per app polls the feed's head id (one cheap query every ``poll_s``, however
many clients are connected) and wakes every waiting stream; each stream then reads its
own ward-filtered changes from the store with ``changes_since``. Polling the store rather
than listening to an in-process broadcaster keeps the API correct when it runs in its own
process, apart from the pipeline that writes alerts; a same-process writer may call
:meth:`ChangeFeed.poke` to wake streams at once.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class ChangeFeed:
    """The latest change id known, and a way to wait for a newer one."""

    def __init__(self, head: Callable[[], Awaitable[int]], *, poll_s: float) -> None:
        self._head = head
        self._poll_s = poll_s
        self._latest = 0
        self._changed = asyncio.Condition()
        self._poked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def latest(self) -> int:
        return self._latest

    async def start(self) -> None:
        await self._refresh()
        self._task = asyncio.create_task(self._watch(), name="api-change-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def poke(self) -> None:
        """Look at the store now (a writer in this process just committed changes)."""
        self._poked.set()

    async def wait_beyond(self, seen: int, timeout_s: float) -> None:
        """Return once the head id is above ``seen``, or after ``timeout_s``."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._latest > seen), timeout_s
                )

    async def _refresh(self) -> None:
        head = await self._head()
        if head > self._latest:
            self._latest = head
            async with self._changed:
                self._changed.notify_all()

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), self._poll_s)
            self._poked.clear()
            try:
                await self._refresh()
            except Exception:  # the store may be briefly unreachable: keep watching
                log.warning("change feed: store unreachable", exc_info=True)
