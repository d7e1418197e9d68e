"""The change feed as the one outbox, on SQLite and PostgreSQL: durable cursors per
consumer, changes carrying the alert as their transaction left it, a delivery log keyed by
(change, channel, target), and followers that retry a failing consumer on its own."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts.feed import FeedFollower, Handled, consumer_name
from alerts.influx import alert_lines
from alerts.model import AlertChange, AlertStatus, ChangeKind, DeliveryAttempt
from alerts.notify import DeliveryResult, change_json, notify_follower
from alerts.policy import MINUTE_MS, Policy, TypePolicy
from alerts.schema import metadata
from alerts.store import AlertStore
from anomaly.events import Detection, DetectionKind, Severity

M = MINUTE_MS
POLICY = Policy(per_type={}, default=TypePolicy(pending_ms=0, keep_firing_ms=0))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[AlertStore]:
    opened = await AlertStore.open(store_url, policy=POLICY)
    if opened.engine.dialect.name == "postgresql":  # one database per session: start empty
        names = ", ".join(t.name for t in metadata.sorted_tables)
        async with opened.engine.begin() as conn:
            await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    try:
        yield opened
    finally:
        await opened.close()


def flood(device: str, *, active: bool = True, metric: str = "") -> Detection:
    return Detection(
        kind=DetectionKind.FLOODING,
        severity=Severity.MAJOR,
        active=active,
        ward="phuong_hoan_kiem",
        device=device,
        metric=metric,
        start_ms=0,
        ts_ms=0,
        score=0.9,
        explanation=f"water at {device}",
    )


@dataclass
class FakeNotifier:
    """Records what it was sent; fails (retryably, unless ``refuse``) while ``down``."""

    channel: str = "fake"
    endpoint: str = "fake://one"
    down: int = 0
    """Sends to fail before it works again."""
    refuse: bool = False
    sent: list[AlertChange] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def target_of(self, change: AlertChange) -> str:
        return f"{self.endpoint}/{change.ward}"

    async def send(self, change: AlertChange) -> DeliveryResult:
        self.bodies.append(change_json(change))
        if self.down > 0:
            self.down -= 1
            return DeliveryResult(False, 2, "down", retryable=not self.refuse)
        self.sent.append(change)
        return DeliveryResult(True, 1)


async def test_feed_changes_carry_the_alert_as_they_left_it(store: AlertStore) -> None:
    (raised,) = await store.apply_detection(flood("cab_1"), now_ms=0)
    (acked,) = await store.acknowledge(raised.alert_id, "noc_an", now_ms=M)
    await store.apply_detection(flood("cab_1", active=False), now_ms=2 * M)
    feed = await store.feed_since(0)
    assert [c.kind for c in feed] == [
        ChangeKind.RAISED,
        ChangeKind.ACKNOWLEDGED,
        ChangeKind.CLEARED,
    ]
    assert [(c.alert.state, c.alert.acknowledged) for c in feed if c.alert] == [
        (AlertStatus.ACTIVE, False),
        (AlertStatus.ACTIVE, True),
        (AlertStatus.CLEARED, True),
    ]
    # What the writes returned is what the feed repeats: the same body, the same point.
    assert feed[0] == raised
    assert feed[1] == acked
    assert alert_lines(feed[:2]) == alert_lines([raised, acked])
    # changes_since (the SSE stream, the API) still shows the alert as it is now.
    assert {c.alert.state for c in await store.changes_since(0) if c.alert} == {AlertStatus.CLEARED}
    assert [c.id for c in await store.feed_since(feed[0].id, limit=1)] == [feed[1].id]


async def test_a_cursor_starts_at_the_head_is_kept_and_never_moves_back(
    store: AlertStore, store_url: str
) -> None:
    await store.apply_detections([flood("cab_1"), flood("cab_2")], now_ms=0)
    head = await store.last_change_id()
    assert head > 0
    assert await store.open_cursor("export:influx:x") == head  # first start: no replay
    more = await store.apply_detection(flood("cab_3"), now_ms=M)
    assert await store.open_cursor("export:influx:x") == head  # kept, not the new head
    await store.advance_cursor("export:influx:x", more[-1].id)
    await store.advance_cursor("export:influx:x", head)  # a late writer never moves it back
    reopened = await AlertStore.open(store_url, policy=POLICY)  # another process, later
    try:
        assert await reopened.open_cursor("export:influx:x") == more[-1].id
        assert await reopened.cursors() == {"export:influx:x": more[-1].id}
    finally:
        await reopened.close()


async def test_the_delivery_log_keeps_one_row_per_change_channel_and_target(
    store: AlertStore,
) -> None:
    (change,) = await store.apply_detection(flood("cab_1"), now_ms=0)
    failed = DeliveryAttempt(change, "webhook", "http://x", False, 3, "HTTP 503")
    delivered = DeliveryAttempt(change, "webhook", "http://x", True, 1)
    other = DeliveryAttempt(change, "mqtt", "cw/v1/_alerts/x", True, 1)
    await store.advance_cursor("notify:webhook:http://x", change.id - 1, [failed])
    await store.advance_cursor("notify:webhook:http://x", change.id, [delivered, other])
    await store.record_deliveries([delivered])  # a repeat after a crash
    log = await store.list_deliveries()
    assert log.count == 2
    rows = {d.channel: d for d in log.data}
    assert (rows["webhook"].status, rows["webhook"].attempts, rows["webhook"].error) == (
        "delivered",
        5,
        "",
    )
    assert (rows["mqtt"].status, rows["mqtt"].attempts) == ("delivered", 1)
    assert await store.cursors() == {"notify:webhook:http://x": change.id}


async def test_a_failing_notifier_retries_alone_and_logs_its_attempts(store: AlertStore) -> None:
    await store.apply_detection(flood("cab_0"), now_ms=0)  # history: not replayed
    good, bad = FakeNotifier(endpoint="fake://good"), FakeNotifier(endpoint="fake://bad")
    followers = [notify_follower(store, n, poll_s=0.05, backoff_s=0.05) for n in (good, bad)]
    for follower in followers:
        await follower.catch_up()  # first start: at the head
    bad.down = 3
    changes = await store.apply_detections([flood(f"cab_{i}") for i in range(1, 6)], now_ms=M)
    silenced_or_not = [c for c in changes if c.notify]
    assert len(silenced_or_not) == 5
    assert await followers[0].catch_up() is True
    assert await followers[1].catch_up() is False  # down: its cursor waits, the other's not
    cursors = await store.cursors()
    assert cursors[followers[0].consumer] == changes[-1].id
    assert cursors[followers[1].consumer] < changes[-1].id
    tasks = [asyncio.create_task(f.run()) for f in followers]
    try:
        for _ in range(200):
            if all(f.caught_up(changes[-1].id) and not f.failing for f in followers):
                break
            await asyncio.sleep(0.02)
    finally:
        for follower, task in zip(followers, tasks, strict=True):
            await follower.drain(task, 5)
    assert [c.id for c in good.sent] == [c.id for c in changes]
    assert {c.id for c in bad.sent} == {c.id for c in changes}
    # Every try of a change sent the same bytes.
    by_id: dict[int, set[bytes]] = {}
    for body in bad.bodies:
        by_id.setdefault(json.loads(body)["id"], set()).add(body)
    assert all(len(bodies) == 1 for bodies in by_id.values())
    log = (await store.list_deliveries(limit=100)).data
    assert len(log) == 10  # one row per change and notifier
    assert {d.status for d in log} == {"delivered"}
    bad_attempts = sum(d.attempts for d in log if d.target.startswith("fake://bad"))
    # Sent concurrently: the first three failed (2 attempts each), the last two went
    # through; the retry starts at the first failure, so those two went out twice.
    assert bad_attempts == 3 * 2 + 2 + 5
    assert len(bad.sent) == 7
    assert consumer_name("notify", "fake", "fake://bad") == followers[1].consumer


async def test_a_refused_change_is_logged_and_passed(store: AlertStore) -> None:
    refusing = FakeNotifier(down=1, refuse=True)
    follower = notify_follower(store, refusing)
    await follower.catch_up()
    first, second = await store.apply_detections([flood("cab_1"), flood("cab_2")], now_ms=0)
    assert await follower.catch_up() is True
    assert [c.id for c in refusing.sent] == [second.id]
    statuses = {d.change_id: d.status for d in (await store.list_deliveries()).data}
    assert statuses == {first.id: "failed", second.id: "delivered"}
    assert follower.position == second.id


async def test_a_crash_between_the_work_and_the_cursor_repeats_the_same_work(
    store: AlertStore,
) -> None:
    """The handler did its work but the process died before the cursor moved: the next
    start repeats those changes, byte for byte, though the alerts changed since."""
    follower = FeedFollower(store, "export:test", _crashing := _Crashing())
    await follower.catch_up()
    changes = await store.apply_detections([flood("cab_1"), flood("cab_2")], now_ms=0)
    with pytest.raises(RuntimeError, match="killed"):
        await follower.catch_up()
    await store.acknowledge(changes[0].alert_id, "noc_an", now_ms=M)  # the alert moves on
    restarted = FeedFollower(store, "export:test", _crashing)
    assert await restarted.catch_up() is True
    first, second = _crashing.lines
    assert second.startswith(first)  # the repeat wrote identical lines (plus the ack)
    assert len(second.splitlines()) == 3
    assert await store.cursors() == {"export:test": await store.last_change_id()}


class _Crashing:
    """A consumer whose first call does the work and then 'dies' before returning."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def __call__(self, changes: list[AlertChange]) -> Handled:
        self.lines.append(alert_lines(changes))
        if len(self.lines) == 1:
            raise RuntimeError("killed")
        return Handled()


def test_consumer_names_fit_the_cursor_table() -> None:
    long = consumer_name("notify", "webhook", "https://example.org/" + "x" * 400)
    assert len(long) == 255
    assert long != consumer_name("notify", "webhook", "https://example.org/" + "x" * 401)
    assert consumer_name("export", "influx", "citywatch") == "export:influx:citywatch"
