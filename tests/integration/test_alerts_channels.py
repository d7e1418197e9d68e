"""Telegram, Zalo and e-mail receivers against real local servers, following a real
store's change feed.

The outside services are unreachable here: Telegram and Zalo are local HTTP servers
speaking the documented subset (Bot API ``sendMessage`` with its ``ok``/``error_code``/
``parameters.retry_after`` answers; Zalo OA v3 ``message/cs`` with the ``access_token``
header and ``error``/``message`` answers), e-mail a real SMTP server (aiosmtpd). The
receivers' clock is a fixed value the tests move, so group timers need no waiting.
"""

import asyncio
import email
import email.policy
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from channel_helpers import ENV
from typer.testing import CliRunner

from alerts.model import AlertChange, ChangeKind
from alerts.notify import EmailNotifier, ReceiverFollower, TelegramNotifier, ZaloNotifier
from alerts.notify.routing import parse_routes
from alerts.policy import Policy, TypePolicy
from alerts.store import AlertStore
from anomaly.events import Detection, DetectionKind, Severity
from citywatch.cli import app
from citywatch.local_services import free_port

TOKEN = ENV["CW_TG_TOKEN"]
ZALO_TOKEN = ENV["CW_ZALO_TOKEN"]
CHAT = "-1001234567890"
ZALO_USER = "5432109876543210987"
WARDS = {"phuong_hoang_mai": "Phường Hoàng Mai", "phuong_ba_dinh": "Phường Ba Đình"}


# ----------------------------------------------------------------------------- servers


@dataclass
class ChatService:
    """A local Telegram Bot API and Zalo OA API (the subset citywatch uses)."""

    url: str = ""
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """Scripted (HTTP status, JSON body) answers for the next requests; then success."""
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    """(path, headers, JSON body) of every request."""

    def telegram_texts(self) -> list[str]:
        return [b["text"] for p, _, b in self.requests if p.endswith("/sendMessage")]


def _telegram_answer(state: ChatService, path: str, body: dict[str, Any]) -> tuple[int, dict]:  # type: ignore[type-arg]
    if path != f"/bot{TOKEN}/sendMessage":
        return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
    if not body.get("chat_id") or not body.get("text"):
        return 400, {"ok": False, "error_code": 400, "description": "Bad Request: text is empty"}
    if body.get("parse_mode") not in (None, "HTML", "MarkdownV2"):
        return 400, {"ok": False, "error_code": 400, "description": "Bad Request: parse_mode"}
    if state.answers:
        return state.answers.pop(0)
    return 200, {"ok": True, "result": {"message_id": len(state.requests), "text": body["text"]}}


def _zalo_answer(
    state: ChatService, headers: dict[str, str], body: dict[str, Any]
) -> tuple[int, dict]:  # type: ignore[type-arg]
    if headers.get("access_token") != ZALO_TOKEN:
        return 200, {"error": -216, "message": "Access token is invalid"}
    user = body.get("recipient", {}).get("user_id")
    text = body.get("message", {}).get("text")
    if not user or not text:
        return 200, {"error": -201, "message": "Parameters are invalid"}
    if state.answers:
        return state.answers.pop(0)
    return 200, {"error": 0, "message": "Success", "data": {"message_id": "m1", "user_id": user}}


@pytest.fixture
def chat() -> Iterator[ChatService]:
    state = ChatService()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            body = json.loads(raw)
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append((self.path, headers, body))
            if self.path == "/v3.0/oa/message/cs":
                status, answer = _zalo_answer(state, headers, body)
            else:
                status, answer = _telegram_answer(state, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    """What the local SMTP server accepted, and how it answers next."""

    host: str = "127.0.0.1"
    port: int = 0
    data_answers: list[str] = field(default_factory=list)
    """SMTP answers to the next DATA commands (then 250)."""
    refuse: set[str] = field(default_factory=set)
    """Recipients answered with 550."""
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())

    class Handler:
        async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook names)
            self,
            server: SMTP,  # noqa: ARG002
            session: Session,  # noqa: ARG002
            envelope: Envelope,
            address: str,
            rcpt_options: list[str],  # noqa: ARG002
        ) -> str:
            if address in box.refuse:
                return "550 5.1.1 no such mailbox here"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(  # noqa: N802
            self,
            server: SMTP,  # noqa: ARG002
            session: Session,  # noqa: ARG002
            envelope: Envelope,
        ) -> str:
            if box.data_answers:
                return box.data_answers.pop(0)
            assert isinstance(envelope.content, bytes)
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            box.messages.append(parsed)
            box.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname=box.host, port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AlertStore]:
    policy = Policy(per_type={}, default=TypePolicy(pending_ms=0, keep_firing_ms=0))
    opened = await AlertStore.open(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", policy=policy)
    try:
        yield opened
    finally:
        await opened.close()


# ----------------------------------------------------------------------------- helpers


def flood(
    device: str = "cab_1", ward: str = "phuong_hoang_mai", severity: Severity = Severity.MAJOR
) -> Detection:
    return Detection(
        kind=DetectionKind.FLOODING,
        severity=severity,
        active=True,
        ward=ward,
        device=device,
        start_ms=0,
        ts_ms=0,
        score=0.97,
        explanation="water 120 mm above the plinth",
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0  # a Monday noon, Hanoi time: no quiet hours

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """Records the waits a notifier asks for, and waits a moment."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await asyncio.sleep(0)


def routes_for(receiver: dict[str, Any], **route: Any) -> Any:
    return parse_routes(
        {
            "receivers": [{"name": "crew", **receiver}],
            "route": {"receiver": "crew", "group_wait": "30s", "group_interval": "5m", **route},
        },
        env=ENV,
    )


TELEGRAM = {"telegram": {"token": "${CW_TG_TOKEN}", "chat_ids": [CHAT]}}


def telegram_follower(
    store: AlertStore,
    chat: ChatService,
    clock: Clock,
    sleeps: Sleeps,
    *,
    token: str = TOKEN,
    attempts: int = 3,
    receiver: dict[str, Any] = TELEGRAM,
    **route: Any,
) -> ReceiverFollower:
    notifier = TelegramNotifier(
        token,
        CHAT,
        api_url=chat.url,
        attempts=attempts,
        backoff_s=0.01,
        max_backoff_s=0.02,
        ward_name=WARDS.__getitem__,
        sleep=sleeps,
    )
    return ReceiverFollower(
        store,
        routes_for(receiver, **route),
        "crew",
        [notifier],
        ward_name=WARDS.__getitem__,
        clock=clock,
    )


async def raise_alerts(store: AlertStore, *detections: Detection) -> list[AlertChange]:
    changes = await store.apply_detections(list(detections), 1_000)
    return [c for c in changes if c.notify]


async def log_rows(store: AlertStore) -> list[tuple[int, str, str, str, int]]:
    rows = (await store.list_deliveries(limit=1000)).data
    return sorted((d.change_id, d.channel, d.target, d.status, d.attempts) for d in rows)


# ----------------------------------------------------------------------------- Telegram


async def test_telegram_groups_a_burst_into_one_message_and_honours_retry_after(
    store: AlertStore, chat: ChatService
) -> None:
    clock, sleeps = Clock(), Sleeps()
    follower = telegram_follower(store, chat, clock, sleeps)
    start = await follower.open()
    changes = await raise_alerts(store, flood("cab_1"), flood("cab_2"))
    assert len(changes) == 2

    assert await follower.catch_up()  # within group_wait: nothing yet, the cursor waits
    assert chat.requests == []
    assert (await store.cursors())[follower.consumer] == start

    chat.answers = [
        (
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 3",
                "parameters": {"retry_after": 3},
            },
        )
    ]
    clock.now += 30
    assert await follower.catch_up()
    assert sleeps.asked == [3.0]  # Telegram's retry_after, not the backoff's
    assert len(chat.requests) == 2
    path, _, body = chat.requests[-1]
    assert (path, body["chat_id"], body["parse_mode"]) == (f"/bot{TOKEN}/sendMessage", CHAT, "HTML")
    (text,) = set(chat.telegram_texts())  # the retry sent the same message
    assert text.startswith("<b>2 thay đổi cảnh báo — Phường Hoàng Mai (2 mới)</b>")  # vi by default
    assert "cab_1" in text
    assert "cab_2" in text
    assert await log_rows(store) == [(c.id, "telegram", CHAT, "delivered", 2) for c in changes]
    assert (await store.cursors())[follower.consumer] == changes[-1].id
    assert follower.consumer == "notify:telegram:crew"


async def test_telegram_refusals_are_final_and_server_errors_wait_for_the_next_round(
    store: AlertStore, chat: ChatService
) -> None:
    clock, sleeps = Clock(), Sleeps()
    follower = telegram_follower(store, chat, clock, sleeps, attempts=2, group_wait="0s")
    await follower.open()
    chat.answers = [(400, {"ok": False, "error_code": 400, "description": "chat not found"})]
    (refused,) = await raise_alerts(store, flood("cab_1"))
    assert await follower.catch_up()  # refused for good: logged, passed
    assert len(chat.requests) == 1
    assert (await store.cursors())[follower.consumer] == refused.id
    (row,) = (await store.list_deliveries()).data
    assert (row.status, row.attempts, row.error) == ("failed", 1, "Telegram 400: chat not found")

    chat.answers = [(500, {"ok": False, "error_code": 500, "description": "Internal"})] * 2
    clock.now += 600  # past the group's interval
    (later,) = await raise_alerts(store, flood("cab_2"))
    assert not await follower.catch_up()  # both attempts failed: try again later
    assert (await store.cursors())[follower.consumer] == refused.id  # held before `later`
    assert await follower.catch_up()  # the server is back
    assert len(chat.requests) == 4
    assert await log_rows(store) == [
        (refused.id, "telegram", CHAT, "failed", 1),
        (later.id, "telegram", CHAT, "delivered", 3),
    ]
    assert (await store.cursors())[follower.consumer] == later.id


async def test_a_wrong_bot_token_is_refused_and_never_logged(
    store: AlertStore, chat: ChatService
) -> None:
    clock, sleeps = Clock(), Sleeps()
    follower = telegram_follower(store, chat, clock, sleeps, token="999:wrong", group_wait="0s")
    await follower.open()
    await raise_alerts(store, flood())
    assert await follower.catch_up()
    (row,) = (await store.list_deliveries()).data
    assert (row.status, row.error) == ("failed", "Telegram 401: Unauthorized")
    assert "999:wrong" not in row.target + row.error


# ----------------------------------------------------------------------------- Zalo


def zalo_follower(
    store: AlertStore, chat: ChatService, clock: Clock, token: str = ZALO_TOKEN
) -> ReceiverFollower:
    notifier = ZaloNotifier(
        token,
        ZALO_USER,
        api_url=chat.url,
        attempts=3,
        backoff_s=0.01,
        max_backoff_s=0.02,
        ward_name=WARDS.__getitem__,
        sleep=Sleeps(),
    )
    receiver = {"zalo": {"access_token": "${CW_ZALO_TOKEN}", "user_ids": [ZALO_USER]}}
    return ReceiverFollower(
        store,
        routes_for(receiver, group_wait="0s", group_by=["..."]),
        "crew",
        [notifier],
        ward_name=WARDS.__getitem__,
        clock=clock,
    )


async def test_zalo_sends_the_documented_body_and_retries_its_rate_limit_code(
    store: AlertStore, chat: ChatService
) -> None:
    clock = Clock()
    follower = zalo_follower(store, chat, clock)
    await follower.open()
    chat.answers = [
        (200, {"error": -32, "message": "Exceeded the limit of requests per minute"}),
        (503, {"error": -1, "message": "Service Unavailable"}),
    ]
    (change,) = await raise_alerts(store, flood(severity=Severity.CRITICAL))
    assert await follower.catch_up()
    assert len(chat.requests) == 3
    path, headers, body = chat.requests[-1]
    assert path == "/v3.0/oa/message/cs"
    assert headers["access_token"] == ZALO_TOKEN
    assert body["recipient"] == {"user_id": ZALO_USER}
    assert body["message"]["text"].startswith("MỚI: Ngập nước (khẩn cấp) — Phường Hoàng Mai\n")
    assert await log_rows(store) == [(change.id, "zalo", ZALO_USER, "delivered", 3)]


async def test_zalo_error_codes_other_than_rate_limits_are_final(
    store: AlertStore, chat: ChatService
) -> None:
    clock = Clock()
    follower = zalo_follower(store, chat, clock)
    await follower.open()
    chat.answers = [(200, {"error": -213, "message": "User has not followed the OA"})]
    (change,) = await raise_alerts(store, flood())
    assert await follower.catch_up()
    assert len(chat.requests) == 1
    (row,) = (await store.list_deliveries()).data
    assert (row.status, row.error) == ("failed", "Zalo error -213: User has not followed the OA")
    assert (await store.cursors())[follower.consumer] == change.id

    # A Notifier too: one change, rendered and sent, without routing.
    expired = ZaloNotifier("expired", ZALO_USER, api_url=chat.url, sleep=Sleeps())
    try:
        result = await expired.send(change)
    finally:
        await expired.close()
    assert (result.delivered, result.retryable, result.attempts) == (False, False, 1)
    assert result.error == "Zalo error -216: Access token is invalid"


# ----------------------------------------------------------------------------- e-mail


def email_follower(
    store: AlertStore, box: Mailbox, clock: Clock, to: list[str], **route: Any
) -> ReceiverFollower:
    notifier = EmailNotifier(
        box.host,
        box.port,
        "citywatch@example.vn",
        to,
        security="none",
        attempts=3,
        backoff_s=0.01,
        max_backoff_s=0.02,
        timeout_s=10,
        ward_name=WARDS.__getitem__,
        lang="en",
    )
    receiver = {
        "lang": "en",  # the NOC reads English
        "email": {
            "host": box.host,
            "port": box.port,
            "security": "none",
            "from": "citywatch@example.vn",
            "to": to,
        },
    }
    return ReceiverFollower(
        store,
        routes_for(receiver, **route),
        "crew",
        [notifier],
        ward_name=WARDS.__getitem__,
        clock=clock,
    )


async def test_email_reaches_a_real_smtp_server_grouped_by_ward(
    store: AlertStore, mailbox: Mailbox
) -> None:
    clock = Clock()
    follower = email_follower(store, mailbox, clock, ["noc@example.vn", "oncall@example.vn"])
    await follower.open()
    changes = await raise_alerts(
        store, flood("cab_1"), flood("cab_2"), flood("cab_7", ward="phuong_ba_dinh")
    )
    mailbox.data_answers = ["451 4.3.0 try again later"]
    assert await follower.catch_up()  # read: the groups start their group_wait
    assert mailbox.messages == []
    clock.now += 30
    assert await follower.catch_up()
    assert len(mailbox.messages) == 2  # one per ward
    by_subject = {m["Subject"]: m for m in mailbox.messages}
    hm = by_subject["2 alert changes — Phường Hoàng Mai (2 new)"]
    bd = by_subject["NEW: Water inside (major) — Phường Ba Đình"]
    assert hm["To"] == "noc@example.vn, oncall@example.vn"
    assert mailbox.envelopes[0] == (
        "citywatch@example.vn",
        ["noc@example.vn", "oncall@example.vn"],
    )
    body = hm.get_content()
    assert "cab_1" in body
    assert "cab_2" in body
    assert bd.get_content().splitlines()[:3] == [
        "Phường Ba Đình · cab_7",
        "Water has got in: check the cabinet or the duct.",
        "Detector: water 120 mm above the plinth",
    ]
    ids = sorted(c.id for c in changes[:2])
    assert hm["Message-ID"] == f"<citywatch-{ids[0]}-{ids[1]}.2@citywatch.local>"
    target = "noc@example.vn,oncall@example.vn"
    rows = await log_rows(store)
    assert {(r[0], r[1], r[2], r[3]) for r in rows} == {
        (c.id, "email", target, "delivered") for c in changes
    }
    assert sorted(r[4] for r in rows) == [1, 2, 2]  # the 451 cost one group a retry


async def test_email_refused_for_good_is_logged_and_passed(
    store: AlertStore, mailbox: Mailbox
) -> None:
    clock = Clock()
    mailbox.refuse = {"nobody@example.vn"}
    follower = email_follower(store, mailbox, clock, ["nobody@example.vn"], group_wait="0s")
    await follower.open()
    (change,) = await raise_alerts(store, flood())
    assert await follower.catch_up()
    assert mailbox.messages == []
    (row,) = (await store.list_deliveries()).data
    assert (row.status, row.attempts) == ("failed", 1)
    assert "550" in row.error
    assert (await store.cursors())[follower.consumer] == change.id


# ----------------------------------------------------------------------------- durability


async def test_a_restart_sends_what_was_waiting_in_a_group(
    store: AlertStore, chat: ChatService
) -> None:
    """The cursor stays before changes waiting out their group_wait: a follower that
    stops (crash) before sending them leaves them to the next one, which sends them."""
    clock, sleeps = Clock(), Sleeps()
    first = telegram_follower(store, chat, clock, sleeps)
    start = await first.open()
    changes = await raise_alerts(store, flood("cab_1"), flood("cab_2"))
    assert await first.catch_up()
    assert first.grouper.oldest() == changes[0].id
    del first  # gone without sending

    again = telegram_follower(store, chat, clock, sleeps)
    assert await again.open() == start
    assert await again.catch_up()  # a new group: its own group_wait
    assert chat.requests == []
    clock.now += 30
    assert await again.catch_up()
    assert len(chat.telegram_texts()) == 1
    assert (await store.cursors())[again.consumer] == changes[-1].id


async def test_the_rate_limit_holds_messages_back_without_dropping_them(
    store: AlertStore, chat: ChatService
) -> None:
    clock, sleeps = Clock(), Sleeps()
    receiver = {**TELEGRAM, "rate_limit": {"messages": 1, "per": "1h"}}
    follower = telegram_follower(store, chat, clock, sleeps, receiver=receiver, group_wait="0s")
    await follower.open()
    hm = await raise_alerts(store, flood("cab_1"))
    bd = await raise_alerts(store, flood("cab_7", ward="phuong_ba_dinh"))
    assert await follower.catch_up()
    assert len(chat.requests) == 1
    assert follower.rate_limited == 1
    assert (await store.cursors())[follower.consumer] == hm[0].id  # bd still waits
    clock.now += 3600
    assert await follower.catch_up()
    assert len(chat.requests) == 2
    assert "Phường Ba Đình" in chat.telegram_texts()[1]
    assert (await store.cursors())[follower.consumer] == bd[0].id


async def test_quiet_hours_and_repeats_at_the_receiver(tmp_path: Path, chat: ChatService) -> None:
    """Quiet all day for what is less than major: the major alert is heard, the minor
    one not. The store reminds of both every 20 min; the receiver passes a reminder of
    the major alert once an hour."""
    policy = Policy(
        per_type={},
        default=TypePolicy(pending_ms=0, keep_firing_ms=0),
        escalate_after_ms=10 * 86_400_000,
        reminder_every_ms=20 * 60_000,
    )
    store = await AlertStore.open(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}", policy=policy)
    clock, sleeps = Clock(), Sleeps()
    data = {
        "receivers": [{"name": "crew", **TELEGRAM}],
        "quiet_hours": {"always": [{"times": ["00:00-24:00"]}]},
        "route": {
            "receiver": "crew",
            "group_wait": "0s",
            "group_interval": "0s",
            "quiet_hours": ["always"],
            "quiet_min_severity": "major",
            "routes": [{"matchers": ['kind="reminder"'], "repeat_interval": "1h"}],
        },
    }
    notifier = TelegramNotifier(TOKEN, CHAT, api_url=chat.url, sleep=sleeps)
    follower = ReceiverFollower(store, parse_routes(data, env=ENV), "crew", [notifier], clock=clock)
    try:
        await follower.open()
        await raise_alerts(store, flood("cab_1", severity=Severity.MINOR))  # muted
        (major,) = await raise_alerts(store, flood("cab_2", severity=Severity.MAJOR))
        assert await follower.catch_up()
        assert len(chat.requests) == 1
        assert follower.grouper.muted == 1
        for k in range(1, 7):  # two hours, a tick every 20 min of data and of wall time
            clock.now += 1200
            await store.tick(now_ms=major.at_ms + k * 1_200_000)
            assert await follower.catch_up()
        reminders = [
            c
            for c in await store.feed_since(major.id)
            if c.kind is ChangeKind.REMINDER and c.alert_id == major.alert_id
        ]
    finally:
        await notifier.close()
        await store.close()
    assert len(reminders) == 6
    assert len(chat.requests) == 3  # the raise, then a reminder at 1 h and at 2 h
    assert follower.grouper.repeats_dropped == 4
    assert follower.grouper.muted == 7  # the minor alert: its raise and its 6 reminders
    assert all("VẪN CHƯA XỬ LÝ" in t for t in chat.telegram_texts()[1:])


async def test_drain_sends_what_waits_before_a_stop(store: AlertStore, chat: ChatService) -> None:
    clock, sleeps = Clock(), Sleeps()
    follower = telegram_follower(store, chat, clock, sleeps, group_wait="1h")
    await follower.open()
    changes = await raise_alerts(store, flood("cab_1"))
    task = asyncio.create_task(follower.run())
    while follower.read != changes[-1].id:
        await asyncio.sleep(0.01)
    assert chat.requests == []
    await follower.drain(task, 10)
    assert len(chat.telegram_texts()) == 1
    assert (await store.cursors())[follower.consumer] == changes[-1].id


# ----------------------------------------------------------------------------- CLI


def test_run_refuses_a_bad_routing_file_before_starting_anything(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "receivers:\n"
        "  - name: crew\n"
        "    telegram: {token: '123:literal', chat_ids: ['1']}\n"
        "route: {receiver: crew, group_wait: soon}\n"
    )
    result = CliRunner().invoke(
        app, ["run", "--data-dir", str(tmp_path / "d"), "--routes", str(routes)]
    )
    assert result.exit_code == 2
    out = "".join(result.output.replace("│", "").split())  # the panel wraps lines
    assert f"{routes}:receivers[0].telegram.token:asecretisneverwritten" in out
    assert f"{routes}:route.group_wait:'soon'isnotaduration" in out
    assert not (tmp_path / "d" / "mosquitto").exists()
