"""Delivering alert changes through the routing file's receivers, from the change feed.

Each receiver is its own consumer of the store's change feed (:class:`ReceiverFollower`,
cursor ``notify:<channel>:<receiver>``), so a receiver whose service is down holds back
no other. A change the routes hand to the receiver joins a group (the route and its
``group_by`` labels); the group goes out as one message once ``group_wait`` has passed
since its first change, and then no more often than every ``group_interval``. A
reminder of an alert this receiver notified less than ``repeat_interval`` ago is
dropped, and so is a change less severe than the route's ``quiet_min_severity`` that
arrives in its quiet hours. Messages over the receiver's rate limit wait (a token
bucket): none is dropped, the waiting groups only grow.

The cursor never passes a change that is still waiting in a group or whose message has
not gone out: after a crash the follower reads those again and sends them (at least
once; e-mails carry a Message-ID made of their change ids, chats have no such key). A
message that fails but may succeed later (429, 5xx, no connection) is tried again with
backoff; a target that refused it for good (4xx) is logged as failed and passed. Each
change of a message gets a delivery-log row per target, keyed as the webhook's are:
(change, channel, target).

Group timing, repeat and rate-limit state live in memory: a restart starts groups anew
(their ``group_wait`` again) and may send a reminder sooner than ``repeat_interval``.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import httpx

from alerts.feed import FeedFollower, Handled, consumer_name
from alerts.model import AlertChange, ChangeKind, DeliveryAttempt
from alerts.notify.base import DeliveryResult
from alerts.notify.email import EmailNotifier
from alerts.notify.message import Message, WardName, codename, render_group
from alerts.notify.routing import Receiver, Route, Routes, labels_of
from alerts.notify.telegram import TelegramNotifier
from alerts.notify.zalo import ZaloNotifier
from alerts.store import AlertStore

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds since the epoch (wall time: quiet hours are read from it)."""

_ENDED = frozenset({ChangeKind.CLEARED, ChangeKind.RESOLVED})


class MessageNotifier(Protocol):
    """A notifier that can send a rendered message (Telegram, Zalo, e-mail)."""

    channel: str
    endpoint: str

    def target_of(self, change: AlertChange) -> str: ...

    async def send_message(
        self, message: Message, change_ids: Sequence[int] = ()
    ) -> DeliveryResult: ...

    async def close(self) -> None: ...


# ----------------------------------------------------------------------------- pure state


@dataclass
class TokenBucket:
    """``capacity`` messages at once, refilled at ``capacity / per_s`` a second."""

    capacity: int
    per_s: float
    tokens: float = -1.0
    at: float | None = None

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.per_s <= 0:
            raise ValueError("a rate limit needs capacity >= 1 and a positive period")
        if self.tokens < 0:
            self.tokens = float(self.capacity)

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        if self.at is not None and now > self.at:
            self.tokens = min(
                float(self.capacity), self.tokens + (now - self.at) * self.capacity / self.per_s
            )
        self.at = now if self.at is None else max(self.at, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class Outbox:
    """One group's message on its way: the changes in it and the targets still to do."""

    changes: list[AlertChange]
    left: list[int]
    """Indexes of the receiver's targets not yet delivered (nor refused for good)."""


@dataclass
class Group:
    key: tuple[str, ...]
    route: Route
    pending: list[AlertChange] = field(default_factory=list)
    first_pending_at: float | None = None
    last_sent_at: float | None = None
    outbox: Outbox | None = None

    def due(self, now: float) -> bool:
        if self.outbox is not None:
            return True  # a message that failed: again at every round (the follower backs off)
        if not self.pending or self.first_pending_at is None:
            return False
        at = self.first_pending_at + self.route.group_wait_s
        if self.last_sent_at is not None:
            at = max(at, self.last_sent_at + self.route.group_interval_s)
        return now >= at

    def oldest(self) -> int | None:
        ids = [c.id for c in self.pending]
        if self.outbox is not None:
            ids += [c.id for c in self.outbox.changes]
        return min(ids) if ids else None


@dataclass
class Grouper:
    """A receiver's groups, repeat bookkeeping and counters (no I/O, no clock: times are
    handed in), so routing, grouping, repeats and quiet hours test with a fixed clock."""

    receiver: str
    groups: dict[tuple[str, ...], Group] = field(default_factory=dict)
    last_notified: dict[int, float] = field(default_factory=dict)
    """Alert id → when this receiver last sent a message about it."""
    muted: int = 0
    """Changes dropped in quiet hours."""
    repeats_dropped: int = 0
    """Reminders dropped within ``repeat_interval``."""

    def add(self, change: AlertChange, route: Route, now: float) -> bool:
        """Take a change routed here; ``False`` if it was dropped (quiet hours, repeat)."""
        labels = labels_of(change)
        if route.is_quiet(datetime.fromtimestamp(now, UTC), labels):
            self.muted += 1
            return False
        key = route.group_key(change, labels)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key, route)
        if change.kind is ChangeKind.REMINDER:
            last = self.last_notified.get(change.alert_id)
            waiting = any(
                c.alert_id == change.alert_id and c.kind is ChangeKind.REMINDER
                for c in group.pending
            )
            if waiting or (last is not None and now - last < route.repeat_interval_s):
                self.repeats_dropped += 1
                return False
        if not group.pending:
            group.first_pending_at = now
        group.pending.append(change)
        return True

    def due(self, now: float, *, everything: bool = False) -> list[Group]:
        """Groups to send now (``everything``: all that have something, timers aside);
        groups with nothing left and past their pacing are forgotten."""
        for key in [
            k
            for k, g in self.groups.items()
            if not g.pending
            and g.outbox is None
            and (g.last_sent_at is None or now - g.last_sent_at >= g.route.group_interval_s)
        ]:
            del self.groups[key]
        return [
            g
            for g in self.groups.values()
            if g.due(now) or (everything and (g.pending or g.outbox is not None))
        ]

    def start(self, group: Group, targets: int) -> Outbox:
        """The group's pending changes become its outbox (to every target)."""
        if group.outbox is None:
            group.outbox = Outbox(group.pending, list(range(targets)))
            group.pending = []
            group.first_pending_at = None
        return group.outbox

    def sent(self, group: Group, now: float) -> None:
        """The group's outbox went to every target (or was refused for good)."""
        if group.outbox is None:
            return
        for change in group.outbox.changes:
            if change.kind in _ENDED:
                self.last_notified.pop(change.alert_id, None)
            else:
                self.last_notified[change.alert_id] = now
        group.outbox = None
        group.last_sent_at = now
        if group.pending:  # what arrived meanwhile waits its group_interval
            group.first_pending_at = group.first_pending_at or now

    def oldest(self) -> int | None:
        """The oldest change id not yet sent (the cursor stays before it)."""
        ids = [i for g in self.groups.values() if (i := g.oldest()) is not None]
        return min(ids) if ids else None


# ----------------------------------------------------------------------------- the follower


class ReceiverFollower(FeedFollower):
    """One receiver of the routing file, following the change feed with its own cursor.

    ``notifiers``: one per target (chat, Zalo user, the e-mail's recipient list), all
    of the receiver's channel. ``clock``: wall seconds (group timers, rate limit, quiet
    hours).
    """

    def __init__(
        self,
        store: AlertStore,
        routes: Routes,
        receiver: str,
        notifiers: Sequence[MessageNotifier],
        *,
        ward_name: WardName = codename,
        clock: Clock = time.time,
        poll_s: float = 1.0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        close: Callable[[], object] | None = None,
    ) -> None:
        spec = routes.receivers[receiver]
        if not notifiers:
            raise ValueError(f"receiver {receiver!r} has no targets")
        super().__init__(
            store,
            consumer_name("notify", spec.channel, receiver),
            _not_a_page_handler,
            notify_only=True,
            poll_s=poll_s,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
        )
        self.routes = routes
        self.receiver = receiver
        self.channel = spec.channel
        self.notifiers = list(notifiers)
        self.ward_name = ward_name
        self.lang = spec.lang
        self.clock = clock
        self.grouper = Grouper(receiver)
        self.bucket = TokenBucket(spec.limit.messages, spec.limit.per)
        self.read: int | None = None
        """How far this process has read the feed (past the cursor: changes waiting)."""
        self.messages = 0
        """Messages delivered (to one target each)."""
        self.rate_limited = 0
        """Rounds that left due messages waiting for the rate limit."""
        self._unlogged: list[DeliveryAttempt] = []
        self._close = close

    def caught_up(self, head: int) -> bool:
        """Everything up to ``head`` is read and no message is due (groups may still be
        waiting out their ``group_wait``: that is their job)."""
        return self.failing or (
            self.read is not None and self.read >= head and not self.grouper.due(self.clock())
        )

    def take(self, change: AlertChange, now: float) -> None:
        """Route one change; keep it if a route hands it to this receiver."""
        if not change.notify:
            return
        for route in self.routes.match(change):
            if route.receiver == self.receiver:
                self.grouper.add(change, route, now)

    async def catch_up(self) -> bool:
        if self.position is None:
            await self.open()
        assert self.position is not None
        if self.read is None or self.read < self.position:
            self.read = self.position
        now = self.clock()
        while True:
            page = await self.store.feed_since(self.read, self.batch)
            for change in page:
                self.take(change, now)
            if page:
                self.read = page[-1].id
            if len(page) < self.batch:
                break
        ok = await self.flush(now, everything=self._draining)
        oldest = self.grouper.oldest()
        done_to = max(self.read if oldest is None else oldest - 1, self.position)
        if done_to > self.position or self._unlogged:
            rows, self._unlogged = self._unlogged, []
            try:
                await self.store.advance_cursor(self.consumer, done_to, rows)
            except Exception:
                self._unlogged = rows + self._unlogged  # logged with the next cursor move
                raise
            self.position = done_to
        return ok

    async def flush(self, now: float, *, everything: bool = False) -> bool:
        """Send the groups that are due; ``False`` if a message failed and will be tried
        again. Messages over the rate limit wait for a later round (not a failure)."""
        ok = True
        for group in self.grouper.due(now, everything=everything):
            outbox = self.grouper.start(group, len(self.notifiers))
            message = render_group(outbox.changes, self.ward_name, self.lang)
            ids = [c.id for c in outbox.changes]
            for index in list(outbox.left):
                if not self.bucket.take(now):
                    self.rate_limited += 1
                    log.info("%s: rate limit reached; messages wait", self.consumer)
                    return ok
                notifier = self.notifiers[index]
                result = await _send(notifier, message, ids)
                self._unlogged += [
                    DeliveryAttempt(
                        c,
                        channel=notifier.channel,
                        target=notifier.target_of(c),
                        delivered=result.delivered,
                        attempts=result.attempts,
                        error=result.error,
                    )
                    for c in outbox.changes
                ]
                if result.delivered:
                    self.messages += 1
                if result.delivered or not result.retryable:
                    outbox.left.remove(index)
                else:
                    ok = False
            if not outbox.left:
                self.handled += len(outbox.changes)
                self.grouper.sent(group, now)
        return ok

    async def close(self) -> None:
        for notifier in self.notifiers:
            with contextlib.suppress(Exception):
                await notifier.close()
        if self._close is not None:
            closed = self._close()
            if asyncio.iscoroutine(closed):
                await closed


async def _not_a_page_handler(_changes: list[AlertChange]) -> Handled:
    raise NotImplementedError("ReceiverFollower reads the feed itself (catch_up)")


async def _send(notifier: MessageNotifier, message: Message, ids: list[int]) -> DeliveryResult:
    try:
        result = await notifier.send_message(message, ids)
    except Exception as exc:  # a notifier bug must not lose the log row
        log.exception("%s notifier raised", notifier.channel)
        return DeliveryResult(False, 1, f"{type(exc).__name__}: {exc}")
    if not result.delivered:
        log.warning(
            "%s message of changes %s to %s failed after %d attempts%s: %s",
            notifier.channel,
            ids,
            notifier.endpoint,
            result.attempts,
            "; will try again" if result.retryable else "",
            result.error,
        )
    return result


# ----------------------------------------------------------------------------- building


def build_notifiers(
    receiver: Receiver, *, ward_name: WardName = codename, client: httpx.AsyncClient
) -> list[MessageNotifier]:
    """One notifier per target of ``receiver`` (HTTP channels share ``client``)."""
    if receiver.telegram is not None:
        tg = receiver.telegram
        return [
            TelegramNotifier(
                tg.token,
                chat,
                api_url=tg.api_url,
                ward_name=ward_name,
                lang=receiver.lang,
                client=client,
            )
            for chat in tg.chat_ids
        ]
    if receiver.zalo is not None:
        zl = receiver.zalo
        return [
            ZaloNotifier(
                zl.access_token,
                user,
                api_url=zl.api_url,
                retry_codes=zl.retry_codes,
                ward_name=ward_name,
                lang=receiver.lang,
                client=client,
            )
            for user in zl.user_ids
        ]
    assert receiver.email is not None
    em = receiver.email
    return [
        EmailNotifier(
            em.host,
            em.port,
            em.sender,
            em.to,
            security=em.security,
            username=em.username,
            password=em.password,
            ward_name=ward_name,
            lang=receiver.lang,
        )
    ]


def receiver_followers(
    store: AlertStore,
    routes: Routes,
    *,
    ward_name: WardName = codename,
    clock: Clock = time.time,
    poll_s: float = 1.0,
    backoff_s: float = 1.0,
    max_backoff_s: float = 30.0,
    timeout_s: float = 10.0,
) -> list[ReceiverFollower]:
    """A follower for every receiver the route tree can reach (close them after)."""
    reachable: set[str] = set()

    def walk(route: Route) -> None:
        reachable.add(route.receiver)
        for child in route.routes:
            walk(child)

    walk(routes.root)
    followers = []
    for name, receiver in routes.receivers.items():
        if name not in reachable:
            log.warning("%s: receiver %s is in no route", routes.source, name)
            continue
        client = httpx.AsyncClient(timeout=timeout_s)
        followers.append(
            ReceiverFollower(
                store,
                routes,
                name,
                build_notifiers(receiver, ward_name=ward_name, client=client),
                ward_name=ward_name,
                clock=clock,
                poll_s=poll_s,
                backoff_s=backoff_s,
                max_backoff_s=max_backoff_s,
                close=client.aclose,
            )
        )
    return followers
