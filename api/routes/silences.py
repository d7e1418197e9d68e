"""Silences (maintenance windows): NOC and admin keys create, read and delete them."""

from typing import Annotated

from fastapi import APIRouter, Path, status

from alerts.store import SILENCE_SORTS, NotFoundError, Sort
from api.deps import Limit, SilenceManager, Skip, StoreDep, sort_by
from api.errors import AUTHED, NOT_FOUND, not_found
from api.schemas import EpochMs, SilenceCreate, SilencePublic, SilencesPublic

router = APIRouter(prefix="/silences", tags=["silences"], responses=AUTHED)

SilenceId = Annotated[int, Path(ge=1, le=2**62)]
SilenceSort = Annotated[tuple[Sort, ...], sort_by(SILENCE_SORTS, "-starts_at")]


@router.get("", response_model=SilencesPublic, summary="List silences (newest first)")
async def list_silences(
    _principal: SilenceManager,
    store: StoreDep,
    sort: SilenceSort,
    skip: Skip = 0,
    limit: Limit = 100,
    active_at: EpochMs | None = None,
) -> SilencesPublic:
    page = await store.list_silences(active_at=active_at, skip=skip, limit=limit, sort=sort)
    return SilencesPublic(
        data=[SilencePublic.model_validate(s) for s in page.data], count=page.count
    )


@router.post(
    "",
    response_model=SilencePublic,
    status_code=status.HTTP_201_CREATED,
    summary="Create a silence (at least one of ward, device, type, severity, matchers)",
)
async def create_silence(
    body: SilenceCreate, principal: SilenceManager, store: StoreDep
) -> SilencePublic:
    silence = await store.create_silence(
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        ward=body.ward,
        device=body.device,
        type=body.type,
        severity=body.severity,
        matchers=body.silence_matchers(),
        comment=body.comment,
        created_by=principal.actor,
        created_by_key=principal.key.id,
    )
    return SilencePublic.model_validate(silence)


@router.get("/{silence_id}", response_model=SilencePublic, responses=NOT_FOUND)
async def get_silence(
    silence_id: SilenceId, _principal: SilenceManager, store: StoreDep
) -> SilencePublic:
    try:
        return SilencePublic.model_validate(await store.get_silence(silence_id))
    except NotFoundError:
        raise not_found(f"silence {silence_id}") from None


@router.delete(
    "/{silence_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
    summary="Expire (delete) a silence: its alerts are notified again from the next tick",
)
async def delete_silence(
    silence_id: SilenceId, _principal: SilenceManager, store: StoreDep
) -> None:
    try:
        await store.delete_silence(silence_id)
    except NotFoundError:
        raise not_found(f"silence {silence_id}") from None
