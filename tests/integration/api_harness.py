"""Helpers shared by the API tests (not a test module): stores, apps, a real server, seeds.

Kept out of ``conftest.py`` so that only the API tests carry them; the test modules wrap
them in small fixtures.
"""

import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

from alerts.model import Role
from alerts.schema import metadata
from alerts.store import AlertStore
from anomaly.events import Detection, DetectionKind, Severity
from api import ApiSettings, create_app
from citywatch.local_services import free_port

STORE_KINDS = ("sqlite", "postgresql")


def store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh SQLite file, or the session's PostgreSQL database (wiped by :func:`open_store`)."""
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def open_store(url: str) -> AlertStore:
    """The store, migrated and emptied (the PostgreSQL database is shared by the session)."""
    store = await AlertStore.open(url)
    async with store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(sa.delete(table))
    return store


TICKET_SECRET = "test-ticket-secret-3f9c1d7e"


def settings(url: str, influx_url: str, **overrides: object) -> ApiSettings:
    values: dict[str, object] = {
        "ticket_secret": TICKET_SECRET,
        "store_url": url,
        "influx_url": influx_url,
        "influx_database": f"api_{uuid.uuid4().hex[:10]}",
        "feed_poll_s": 0.05,
        **overrides,
    }
    return ApiSettings.model_validate(values)


@asynccontextmanager
async def client_for(app: FastAPI, key: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client with the app's lifespan running."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api", headers=headers
        ) as client,
    ):
        yield client


@contextmanager
def serve(config: ApiSettings) -> Iterator[str]:
    """A real uvicorn server (own thread and event loop, own store engine); yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def keys(store: AlertStore) -> dict[str, str]:
    """One key per role: ``noc``, ``admin``, ``crew_a`` (ward_a) and ``crew_b`` (ward_b)."""
    out: dict[str, str] = {}
    _, out["noc"] = await store.create_api_key(Role.NOC, name="noc-desk")
    _, out["admin"] = await store.create_api_key(Role.ADMIN, name="admin")
    _, out["crew_a"] = await store.create_api_key(Role.CREW, ["ward_a"], name="crew-a")
    _, out["crew_b"] = await store.create_api_key(Role.CREW, ["ward_b"], name="crew-b")
    return out


def detection(
    ward: str,
    device: str,
    *,
    kind: DetectionKind = DetectionKind.INTRUSION,
    severity: Severity = Severity.MAJOR,
    ts_ms: int = 1_700_000_000_000,
    explanation: str = "cabinet door opened at 02:13, outside working hours",
) -> Detection:
    """A detection that raises an alert at once (intrusion and cable cut have no pending)."""
    return Detection(
        kind=kind,
        severity=severity,
        active=True,
        ward=ward,
        device=device,
        start_ms=ts_ms,
        ts_ms=ts_ms,
        score=0.9,
        explanation=explanation,
    )


async def raise_alert(store: AlertStore, ward: str, device: str, **kw: object) -> int:
    """Apply a detection and return the id of the alert it raised."""
    changes = await store.apply_detection(detection(ward, device, **kw))  # type: ignore[arg-type]
    return changes[-1].alert_id


def problem(response: httpx.Response, status: int, detail: str | None = None) -> dict[str, Any]:
    """The RFC 9457 problem details of an error ``response``, checked for the one shape
    every error of the API has (``detail``: this exact text, when given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["title"] == HTTPStatus(status).phrase
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["instance"] == response.request.url.path
    if detail is not None:
        assert body["detail"] == detail
    if status == 422:
        assert body["errors"]
        for error in body["errors"]:
            assert set(error) == {"loc", "msg", "type"}
    else:
        assert "errors" not in body
    return body
