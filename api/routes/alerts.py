"""Alerts: list with filters and paging, one alert with its timeline, and the actions.

Every action takes an optional ``Idempotency-Key`` header (:mod:`api.idempotency`)."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from alerts.lifecycle import TransitionError
from alerts.model import AlertSeverity as Severity
from alerts.model import AlertStatus, Role
from alerts.model import AlertType as DetectionKind
from alerts.store import ALERT_SORTS, AlertFilter, AlertStore, NotFoundError, Sort
from api.auth import Principal
from api.deps import Limit, Operator, Reader, Skip, StoreDep, sort_by
from api.errors import AUTHED, CONFLICT, NOT_FOUND, conflict, forbidden, not_found
from api.idempotency import IdempotencyKey, once, request_digest
from api.schemas import (
    ActionCreate,
    AlertDetailPublic,
    AlertPublic,
    AlertsPublic,
    AssignCreate,
    CommentCreate,
    EpochMs,
    Id,
)

router = APIRouter(prefix="/alerts", tags=["alerts"], responses=AUTHED)
AlertSort = Annotated[tuple[Sort, ...], sort_by(ALERT_SORTS, "-raised_at,severity")]

AlertId = Annotated[int, Path(ge=1, le=2**62, description="alert id")]


@router.get("", response_model=AlertsPublic, summary="List alerts (newest first)")
async def list_alerts(
    *,
    principal: Reader,
    store: StoreDep,
    sort: AlertSort,
    skip: Skip = 0,
    limit: Limit = 100,
    state: AlertStatus | None = None,
    severity: Severity | None = None,
    ward: Id | None = None,
    device: Id | None = None,
    type: DetectionKind | None = None,
    acknowledged: bool | None = None,
    incident: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    opened_from: Annotated[
        EpochMs | None,
        Query(alias="from", description="opened at or after (epoch ms or ISO 8601)"),
    ] = None,
    opened_to: Annotated[
        EpochMs | None, Query(alias="to", description="opened before (epoch ms or ISO 8601)")
    ] = None,
) -> AlertsPublic:
    where = AlertFilter(
        state=state,
        severity=severity,
        ward=ward,
        wards=principal.ward_scope,
        device=device,
        type=type,
        acknowledged=acknowledged,
        incident=incident,
        since=opened_from,
        until=opened_to,
    )
    page = await store.list_alerts(where, skip=skip, limit=limit, sort=sort)
    return AlertsPublic(data=[AlertPublic.model_validate(a) for a in page.data], count=page.count)


async def _detail(store: AlertStore, principal: Principal, alert_id: int) -> AlertDetailPublic:
    try:
        detail = await store.get_alert(alert_id)
    except NotFoundError:
        raise not_found(f"alert {alert_id}") from None
    principal.check_ward(detail.alert.ward, f"alert {alert_id}")
    return AlertDetailPublic.model_validate(
        {
            **AlertPublic.model_validate(detail.alert).model_dump(),
            "timeline": detail.timeline,
            "comments": detail.comments,
        }
    )


@router.get(
    "/{alert_id}",
    response_model=AlertDetailPublic,
    responses=NOT_FOUND,
    summary="One alert with its timeline and comments",
)
async def get_alert(alert_id: AlertId, principal: Reader, store: StoreDep) -> AlertDetailPublic:
    return await _detail(store, principal, alert_id)


async def _visible(store: AlertStore, principal: Principal, alert_id: int) -> None:
    """404 unless the alert exists and the caller may see it."""
    await _detail(store, principal, alert_id)


async def _act(
    store: AlertStore,
    principal: Principal,
    alert_id: int,
    change: Callable[[], Awaitable[object]],
) -> AlertPublic:
    """Every action's shape: 404 unless visible, the change (409 if the lifecycle refuses
    it), then the alert as it is after."""
    await _visible(store, principal, alert_id)
    try:
        await change()
    except TransitionError as exc:
        raise conflict(str(exc)) from None
    return AlertPublic.model_validate((await store.get_alert(alert_id)).alert)


_ACTION_ERRORS = {**NOT_FOUND, **CONFLICT}


@router.post(
    "/{alert_id}/acknowledge",
    response_model=AlertPublic,
    responses=_ACTION_ERRORS,
    summary="Acknowledge: someone is on it",
)
async def acknowledge_alert(
    alert_id: AlertId,
    principal: Operator,
    store: StoreDep,
    response: Response,
    body: ActionCreate | None = None,
    idempotency_key: IdempotencyKey = None,
) -> AlertPublic:

    async def change() -> None:
        await store.acknowledge(alert_id, principal.actor)
        if body is not None and body.note:
            await store.comment(alert_id, body.note, principal.actor)

    request = request_digest("acknowledge", alert_id, body.note if body else "")
    return await once(
        store,
        principal,
        idempotency_key,
        request,
        response,
        lambda: _act(store, principal, alert_id, change),
    )


@router.post(
    "/{alert_id}/unacknowledge",
    response_model=AlertPublic,
    responses=_ACTION_ERRORS,
    summary="Take back an acknowledgement",
)
async def unacknowledge_alert(
    alert_id: AlertId,
    principal: Operator,
    store: StoreDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> AlertPublic:
    return await once(
        store,
        principal,
        idempotency_key,
        request_digest("unacknowledge", alert_id, None),
        response,
        lambda: _act(
            store, principal, alert_id, lambda: store.unacknowledge(alert_id, principal.actor)
        ),
    )


@router.post(
    "/{alert_id}/assign",
    response_model=AlertPublic,
    responses=_ACTION_ERRORS,
    summary="Assign to a crew (null unassigns); a crew key may assign only itself",
)
async def assign_alert(
    alert_id: AlertId,
    body: AssignCreate,
    principal: Operator,
    store: StoreDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> AlertPublic:
    async def act() -> AlertPublic:
        await _visible(store, principal, alert_id)  # 404 before 403: other wards stay unseen
        assignee = body.assignee or None
        if principal.role is Role.CREW and assignee not in (None, principal.actor):
            raise forbidden(f"a crew key may assign only itself ({principal.actor!r})")
        return await _act(
            store, principal, alert_id, lambda: store.assign(alert_id, assignee, principal.actor)
        )

    request = request_digest("assign", alert_id, body.assignee or None)
    return await once(store, principal, idempotency_key, request, response, act)


@router.post(
    "/{alert_id}/comment",
    response_model=AlertPublic,
    responses=_ACTION_ERRORS,
    summary="Add a comment to the alert's timeline",
)
async def comment_on_alert(
    alert_id: AlertId,
    body: CommentCreate,
    principal: Operator,
    store: StoreDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> AlertPublic:
    return await once(
        store,
        principal,
        idempotency_key,
        request_digest("comment", alert_id, body.text),
        response,
        lambda: _act(
            store, principal, alert_id, lambda: store.comment(alert_id, body.text, principal.actor)
        ),
    )


@router.post(
    "/{alert_id}/resolve",
    response_model=AlertPublic,
    responses=_ACTION_ERRORS,
    summary="Clear the alert by hand (fixed, or a false alarm)",
)
async def resolve_alert(
    alert_id: AlertId,
    principal: Operator,
    store: StoreDep,
    response: Response,
    body: ActionCreate | None = None,
    idempotency_key: IdempotencyKey = None,
) -> AlertPublic:
    note = body.note if body else ""
    return await once(
        store,
        principal,
        idempotency_key,
        request_digest("resolve", alert_id, note),
        response,
        lambda: _act(
            store, principal, alert_id, lambda: store.resolve(alert_id, principal.actor, note)
        ),
    )
