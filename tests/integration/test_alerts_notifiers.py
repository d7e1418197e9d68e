"""Notifiers against real servers: a local HTTP server for the webhook (HMAC, retries,
delivery log) and the session's Mosquitto for the crew topic."""

import asyncio
import hashlib
import hmac
import json
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from alerts.notify import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    Dispatcher,
    MqttNotifier,
    WebhookNotifier,
    alert_topic,
    notify_follower,
)
from alerts.policy import Policy, TypePolicy
from alerts.store import AlertStore
from anomaly.events import Detection, DetectionKind, Severity
from citywatch.local_services import free_port

SECRET = "s3cret-shared-with-the-receiver"


@dataclass
class Receiver:
    """What the webhook server saw, and how it should answer next."""

    url: str
    answers: list[int] = field(default_factory=list)
    """Status codes for the next requests (then 200)."""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((dict(self.headers), body))
            status = state.answers.pop(0) if state.answers else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"nope" if status >= 400 else b"ok")

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/citywatch"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AlertStore]:
    policy = Policy(per_type={}, default=TypePolicy(pending_ms=0, keep_firing_ms=0))
    opened = await AlertStore.open(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", policy=policy)
    try:
        yield opened
    finally:
        await opened.close()


def flood(device: str = "cab_1", ward: str = "phuong_hoan_kiem", active: bool = True) -> Detection:
    return Detection(
        kind=DetectionKind.FLOODING,
        severity=Severity.CRITICAL,
        active=active,
        ward=ward,
        device=device,
        start_ms=0,
        ts_ms=0,
        score=0.97,
        explanation="water 120 mm above the plinth",
    )


def webhook(url: str, **kwargs: float) -> WebhookNotifier:
    return WebhookNotifier(url, SECRET, backoff_s=0.01, max_backoff_s=0.05, timeout_s=2, **kwargs)  # type: ignore[arg-type]


async def test_webhook_signs_retries_and_logs(receiver: Receiver, store: AlertStore) -> None:
    receiver.answers = [503, 502]
    hook = webhook(receiver.url, attempts=4)
    dispatcher = Dispatcher(store, notifiers=[hook])
    try:
        changes = await store.apply_detection(flood(), now_ms=1_000)
        await dispatcher.dispatch(changes)
    finally:
        await hook.close()
    assert len(receiver.requests) == 3
    headers, body = receiver.requests[-1]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected
    assert {h[SIGNATURE_HEADER] for h, _ in receiver.requests} == {expected}  # same body each time
    payload = json.loads(body)
    assert (payload["kind"], payload["alert"]["device"], payload["alert"]["severity"]) == (
        "raised",
        "cab_1",
        "critical",
    )
    assert payload["id"] == changes[0].id
    (row,) = (await store.list_deliveries()).data
    assert (row.channel, row.status, row.attempts, row.target) == (
        "webhook",
        "delivered",
        3,
        receiver.url,
    )
    assert row.change_id == changes[0].id


async def test_webhook_gives_up_and_logs_the_error(receiver: Receiver, store: AlertStore) -> None:
    receiver.answers = [500, 500, 500]
    dead = webhook(f"http://127.0.0.1:{free_port()}/", attempts=2)
    refused = webhook(receiver.url, attempts=3)
    dispatcher = Dispatcher(store, notifiers=[dead, refused])
    try:
        await dispatcher.dispatch(await store.apply_detection(flood(), now_ms=1_000))
    finally:
        await dead.close()
        await refused.close()
    rows = {d.target: d for d in (await store.list_deliveries()).data}
    assert rows[refused.url].status == "failed"
    assert rows[refused.url].attempts == 3
    assert rows[refused.url].error.startswith("HTTP 500")
    assert rows[dead.url].status == "failed"
    assert rows[dead.url].attempts == 2
    assert "ConnectError" in rows[dead.url].error
    assert dispatcher.failed == 2


async def test_webhook_does_not_retry_a_client_error(receiver: Receiver, store: AlertStore) -> None:
    receiver.answers = [400]
    hook = webhook(receiver.url, attempts=5)
    try:
        (change,) = await store.apply_detection(flood(), now_ms=1_000)
        result = await hook.send(change)
    finally:
        await hook.close()
    assert (result.delivered, result.attempts) == (False, 1)
    assert len(receiver.requests) == 1


def test_webhook_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookNotifier("ftp://x", SECRET)
    with pytest.raises(ValueError, match="secret"):
        WebhookNotifier("http://x", "")


async def test_silenced_changes_are_in_the_feed_but_not_notified(
    receiver: Receiver, store: AlertStore
) -> None:
    await store.create_silence(starts_at=0, ends_at=10_000, device="cab_1")
    hook = webhook(receiver.url)
    dispatcher = Dispatcher(store, [hook])
    try:
        await dispatcher.dispatch(await store.apply_detection(flood("cab_1"), now_ms=1_000))
        await dispatcher.dispatch(await store.apply_detection(flood("cab_2"), now_ms=1_000))
    finally:
        await hook.close()
    assert [json.loads(b)["alert"]["device"] for _, b in receiver.requests] == ["cab_2"]
    # The live view (SSE) reads the store's change feed: silenced changes are there.
    seen = [(c.alert.device, c.kind.value) for c in await store.changes_since(0) if c.alert]
    assert seen == [("cab_1", "raised"), ("cab_1", "silenced"), ("cab_2", "raised")]


def crew_app(
    broker, client_id: str
) -> tuple[mqtt.Client, "queue.Queue[mqtt.MQTTMessage]", threading.Event]:  # type: ignore[no-untyped-def]
    """A crew phone's MQTT client on every ward's alert topic (started; stop it after)."""
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed = threading.Event()
    crew = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    crew.on_connect = lambda c, *_: c.subscribe(alert_topic("+"), qos=1)
    crew.on_subscribe = lambda *_: subscribed.set()
    crew.on_message = lambda _c, _u, msg: got.put(msg)
    crew.connect(broker.host, broker.port)
    crew.loop_start()
    return crew, got, subscribed


async def test_mqtt_notifier_publishes_to_the_wards_alert_topic(broker, store: AlertStore) -> None:  # type: ignore[no-untyped-def]
    crew, got, subscribed = crew_app(broker, "crew-app-test")
    notifier = MqttNotifier(broker.host, broker.port, client_id="citywatch-alerts-test")
    try:
        assert subscribed.wait(10)
        await notifier.start()
        dispatcher = Dispatcher(store, notifiers=[notifier])
        await dispatcher.dispatch(await store.apply_detection(flood(ward="phuong_ba_dinh"), 1_000))
        message = got.get(timeout=10)
    finally:
        await notifier.close()
        crew.loop_stop()
        crew.disconnect()
    assert message.topic == "cw/v1/_alerts/phuong_ba_dinh"
    assert message.qos == 1
    assert not message.retain
    assert json.loads(message.payload)["alert"]["ward"] == "phuong_ba_dinh"
    (row,) = (await store.list_deliveries()).data
    assert (row.channel, row.status, row.target) == ("mqtt", "delivered", message.topic)


async def test_mqtt_notifier_reports_an_absent_broker() -> None:
    notifier = MqttNotifier("127.0.0.1", free_port())
    with pytest.raises(ConnectionError, match="no MQTT broker"):
        await notifier.start(timeout_s=0.5)


async def test_a_burst_of_alerts_goes_out_acknowledged_and_logged(
    broker, store: AlertStore
) -> None:  # type: ignore[no-untyped-def]
    """Hundreds of changes at once: each published, acknowledged by the broker (PUBACK
    awaited on the event loop, no thread per message) and logged in one transaction."""
    crew, got, subscribed = crew_app(broker, "crew-app-burst")
    notifier = MqttNotifier(broker.host, broker.port, client_id="citywatch-alerts-burst")
    burst = [
        Detection(
            kind=DetectionKind.FLOODING,
            severity=Severity.MAJOR,
            active=True,
            ward=f"ward_{i % 7}",
            device=f"cab_{i}",
            start_ms=1_000,
            ts_ms=1_000,
            score=0.95,
            explanation="water in the plinth",
        )
        for i in range(300)
    ]
    try:
        assert subscribed.wait(10)
        await notifier.start()
        changes = await store.apply_detections(burst, 1_000)
        await Dispatcher(store, notifiers=[notifier]).dispatch(changes)
        received = {json.loads(got.get(timeout=10).payload)["id"] for _ in changes}
    finally:
        await notifier.close()
        crew.loop_stop()
        crew.disconnect()
    assert received == {c.id for c in changes}
    assert len(changes) == 300
    log = await store.list_deliveries(limit=1000)
    assert log.count == 300
    assert {(d.channel, d.status, d.attempts) for d in log.data} == {("mqtt", "delivered", 1)}
    assert {d.change_id for d in log.data} == received


async def test_a_webhook_down_longer_than_its_retries_gets_the_change_later_with_one_key(
    receiver: Receiver, store: AlertStore
) -> None:
    """Run as a follower of the change feed, a webhook whose receiver answers 503 for
    longer than its own retries keeps the change: the follower tries again from its
    cursor, every request of the change carrying the same Idempotency-Key and body."""
    receiver.answers = [503] * 5
    hook = webhook(receiver.url, attempts=2)
    follower = notify_follower(store, hook, poll_s=0.05, backoff_s=0.05)
    try:
        await follower.catch_up()
        (change,) = await store.apply_detection(flood(), now_ms=1_000)
        task = asyncio.create_task(follower.run())
        for _ in range(200):
            if follower.position == change.id:
                break
            await asyncio.sleep(0.02)
        await follower.drain(task, 5)
    finally:
        await hook.close()
    assert len(receiver.requests) == 6  # 2 + 2 + 1 of 503s, then 200
    assert {h[IDEMPOTENCY_HEADER] for h, _ in receiver.requests} == {f"citywatch-{change.id}"}
    assert len({body for _, body in receiver.requests}) == 1
    (row,) = (await store.list_deliveries()).data
    assert (row.status, row.attempts, row.change_id) == ("delivered", 6, change.id)
    assert (await store.cursors())[follower.consumer] == change.id
