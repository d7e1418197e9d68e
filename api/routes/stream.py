"""Live push: alert changes as Server-Sent Events, resumable with ``Last-Event-ID``.

Event ids are the store's change-feed ids (monotonic in commit order), so a client that
reconnects with the last id it saw gets exactly what it missed. The first event,
``ready``, names where the stream starts; then every change is an event ``change`` whose
data is the change with the alert after it. FastAPI's SSE support sends ``: ping``
keep-alive comments when the stream is idle. Browsers authenticate with a ticket from
``POST /stream/ticket`` (see :mod:`api.tickets` for why); other clients may send their
Bearer key.
"""

import time
from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api import tickets
from api.auth import Principal
from api.deps import Reader, ServicesDep, _bearer
from api.errors import AUTHED, unauthorized
from api.schemas import Id, StreamChangePublic, TicketPublic

router = APIRouter(tags=["stream"])

BATCH = 200
WAIT_S = 5.0
RETRY_MS = 3000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def stream_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ticket: Annotated[
        str | None,
        Query(max_length=200, description="a ticket from POST /stream/ticket (for EventSource)"),
    ] = None,
) -> Principal:
    store = services.store
    if ticket is not None:
        settings = services.settings
        try:
            key_id = tickets.verify(
                settings.ticket_key, ticket, _now_ms(), max_ttl_ms=settings.ticket_ttl_s * 1000
            )
        except tickets.TicketError as exc:
            raise unauthorized(str(exc)) from None
        key = next((k for k in await store.list_api_keys() if k.id == key_id), None)
        if key is None or key.revoked_at is not None:
            raise unauthorized("the ticket's API key is revoked")
        return Principal(key)
    if credentials is None:
        raise unauthorized("send `Authorization: Bearer <key>` or ?ticket=")
    key = await store.verify_api_key(credentials.credentials)
    if key is None:
        raise unauthorized("unknown or revoked API key")
    return Principal(key)


@router.post(
    "/stream/ticket",
    responses=AUTHED,
    response_model=TicketPublic,
    summary="Trade the Bearer key for a short-lived SSE ticket (EventSource sends no headers)",
)
async def create_stream_ticket(principal: Reader, services: ServicesDep) -> TicketPublic:
    settings = services.settings
    expires_at = _now_ms() + settings.ticket_ttl_s * 1000
    return TicketPublic(
        ticket=tickets.issue(settings.ticket_key, principal.key.id, expires_at),
        expires_at=expires_at,
    )


@router.get(
    "/alerts/stream",
    response_class=EventSourceResponse,
    summary="Alert changes as Server-Sent Events (filter by ward; resume with Last-Event-ID)",
    responses={
        **AUTHED,
        422: {"description": "Invalid ward or Last-Event-ID"},
    },
)
async def stream_alerts(
    services: ServicesDep,
    principal: Annotated[Principal, Depends(stream_principal)],
    ward: Annotated[list[Id] | None, Query(max_length=500)] = None,
    last_event_id: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, le=2**62, description="resume after this change"),
    ] = None,
    after: Annotated[
        int | None,
        Query(
            alias="last_event_id",
            ge=0,
            le=2**62,
            description="same as the Last-Event-ID header (for a new EventSource)",
        ),
    ] = None,
) -> AsyncIterable[ServerSentEvent]:
    store, feed, metrics = services.store, services.feed, services.metrics
    wards = principal.narrow(ward)
    resume = last_event_id if last_event_id is not None else after
    cursor = resume if resume is not None else await store.last_change_id()
    metrics.sse_clients.inc()
    try:
        yield ServerSentEvent(
            event="ready", id=str(cursor), retry=RETRY_MS, data={"last_event_id": cursor}
        )
        while True:
            seen_head = feed.latest
            changes = [] if wards == [] else await store.changes_since(cursor, wards, BATCH)
            for change in changes:
                cursor = change.id
                metrics.sse_events.inc()
                yield ServerSentEvent(
                    event="change",
                    id=str(change.id),
                    data=StreamChangePublic.model_validate(change),
                )
            if len(changes) < BATCH:
                await feed.wait_beyond(max(seen_head, cursor), WAIT_S)
    finally:
        metrics.sse_clients.dec()
