"""The SSE stream on a real uvicorn server: tickets, ward filter, live push, resume."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from api_harness import (
    STORE_KINDS,
    TICKET_SECRET,
    keys,
    open_store,
    problem,
    raise_alert,
    serve,
    settings,
    store_url,
)

from alerts.store import AlertStore
from api import tickets

DEADLINE_S = 10.0


@dataclass
class Event:
    event: str = "message"
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)


class Stream:
    """A minimal SSE reader over an open httpx streaming response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, *, keep_comments: bool = False) -> Event:
        async def read() -> Event:
            event = Event()
            async for line in self._lines:
                if line == "":
                    if event.data or event.id is not None or event.comments:
                        if event.comments and not keep_comments and not event.data:
                            event = Event()
                            continue
                        return event
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    event.comments.append(value)
                elif name == "event":
                    event.event = value
                elif name == "id":
                    event.id = value
                elif name == "data":
                    event.data += value
            raise EOFError("stream ended")

        return await asyncio.wait_for(read(), DEADLINE_S)

    async def changes(self, count: int) -> list[Event]:
        out = []
        while len(out) < count:
            event = await self.next()
            if event.event == "change":
                out.append(event)
        return out


@dataclass
class Live:
    url: str
    store: AlertStore
    keys: dict[str, str]
    http: httpx.AsyncClient

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    @asynccontextmanager
    async def open(self, *, headers: dict[str, str], **params: object) -> AsyncIterator[Stream]:
        async with self.http.stream(
            "GET", f"{self.url}/alerts/stream", headers=headers, params=params
        ) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            yield Stream(response)


@pytest.fixture(params=STORE_KINDS)
def server_url(request: pytest.FixtureRequest, tmp_path, influx) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    url = store_url(request.param, tmp_path, request)
    # The server opens its own store on the same database (as a separate process would).
    loop = asyncio.new_event_loop()
    loop.run_until_complete(_wipe(url))
    loop.close()
    with serve(settings(url, influx.url)) as base:
        yield url, base


async def _wipe(url: str) -> None:
    store = await open_store(url)
    await store.close()


@pytest.fixture
async def live(server_url: tuple[str, str]) -> AsyncIterator[Live]:
    url, base = server_url
    store = await AlertStore.open(url)
    try:
        async with httpx.AsyncClient(timeout=DEADLINE_S) as http:
            yield Live(base, store, await keys(store), http)
    finally:
        await store.close()


async def test_stream_pushes_live_and_resumes_with_last_event_id(live: Live) -> None:
    first = await raise_alert(live.store, "ward_a", "cab-a1")
    async with live.open(headers=live.auth("noc")) as stream:
        ready = await stream.next()
        assert ready.event == "ready"
        head = int(ready.id or 0)
        assert head >= 1
        second = await raise_alert(live.store, "ward_b", "cab-b1")
        (change,) = await stream.changes(1)
        assert change.id is not None
        assert int(change.id) > head
        body = httpx.Response(200, content=change.data).json()
        assert body["kind"] == "raised"
        assert body["alert"]["id"] == second
        assert body["alert"]["ward"] == "ward_b"
        last_seen = int(change.id)

    # While disconnected: an acknowledgement and a new alert. Resuming gets both, in order.
    await live.store.acknowledge(first, "noc-desk")
    third = await raise_alert(live.store, "ward_a", "cab-a2")
    headers = {**live.auth("noc"), "Last-Event-ID": str(last_seen)}
    async with live.open(headers=headers) as stream:
        assert (await stream.next()).id == str(last_seen)
        missed = await stream.changes(2)
        bodies = [httpx.Response(200, content=e.data).json() for e in missed]
        assert [(b["alert_id"], b["kind"]) for b in bodies] == [
            (first, "acknowledged"),
            (third, "raised"),
        ]
        assert [int(e.id or 0) for e in missed] == sorted(int(e.id or 0) for e in missed)

    # The same resume through the query parameter (a new EventSource cannot set headers).
    async with live.open(headers=live.auth("noc"), last_event_id=last_seen) as stream:
        await stream.next()
        assert [e.id for e in await stream.changes(2)] == [e.id for e in missed]

    # Closed streams are released on the server (the gauge of connected streams returns to 0).
    deadline = time.monotonic() + DEADLINE_S
    while "citywatch_api_sse_clients 0.0" not in (await live.http.get(f"{live.url}/metrics")).text:
        assert time.monotonic() < deadline, "SSE streams still counted after disconnecting"
        await asyncio.sleep(0.05)


async def test_crew_stream_with_ticket_sees_only_its_wards(live: Live) -> None:
    ticket = (await live.http.post(f"{live.url}/stream/ticket", headers=live.auth("crew_a"))).json()
    assert ticket["expires_at"] > time.time() * 1000
    async with live.open(headers={}, ticket=ticket["ticket"], last_event_id=0) as stream:
        await stream.next()
        await raise_alert(live.store, "ward_b", "cab-b1")
        mine = await raise_alert(live.store, "ward_a", "cab-a1")
        (change,) = await stream.changes(1)
        assert httpx.Response(200, content=change.data).json()["alert_id"] == mine

    # A NOC stream filtered to one ward.
    async with live.open(headers=live.auth("noc"), ward="ward_b", last_event_id=0) as stream:
        await stream.next()
        (change,) = await stream.changes(1)
        assert httpx.Response(200, content=change.data).json()["ward"] == "ward_b"


async def test_stream_refuses_missing_forged_and_expired_tickets(live: Live) -> None:
    key_id = (await live.store.verify_api_key(live.keys["crew_a"])).id  # type: ignore[union-attr]
    secret = TICKET_SECRET.encode()
    expired = tickets.issue(secret, key_id, int(time.time() * 1000) - 1)
    too_long = tickets.issue(secret, key_id, int(time.time() * 1000) + 3_600_000)
    forged = tickets.issue(b"another secret", key_id, int(time.time() * 1000) + 60_000)
    for params in (
        {},
        {"ticket": "garbage"},
        {"ticket": expired},
        {"ticket": forged},
        {"ticket": too_long},
    ):
        response = await live.http.get(f"{live.url}/alerts/stream", params=params)
        problem(response, 401)
    bad_resume = await live.http.get(
        f"{live.url}/alerts/stream", headers={**live.auth("noc"), "Last-Event-ID": "abc"}
    )
    assert problem(bad_resume, 422)["errors"][0]["loc"] == ["header", "Last-Event-ID"]


async def test_idle_stream_sends_keepalive_comments(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fastapi.routing._PING_INTERVAL", 0.2)
    async with live.open(headers=live.auth("noc")) as stream:
        assert (await stream.next()).event == "ready"
        event = await stream.next(keep_comments=True)
        assert event.comments == ["ping"]
