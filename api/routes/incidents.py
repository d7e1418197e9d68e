"""Incidents: alerts of one cause (area outage, cable cut) grouped under a root alert."""

from typing import Annotated

from fastapi import APIRouter, Path

from alerts.store import INCIDENT_SORTS, NotFoundError, Sort
from api.deps import Limit, Reader, Skip, StoreDep, sort_by
from api.errors import AUTHED, NOT_FOUND, not_found
from api.schemas import Id, IncidentPublic, IncidentsPublic

router = APIRouter(prefix="/incidents", tags=["incidents"], responses=AUTHED)
IncidentSort = Annotated[tuple[Sort, ...], sort_by(INCIDENT_SORTS, "-opened_at")]


@router.get("", response_model=IncidentsPublic, summary="List incidents (newest first)")
async def list_incidents(
    *,
    principal: Reader,
    store: StoreDep,
    sort: IncidentSort,
    skip: Skip = 0,
    limit: Limit = 100,
    open_only: bool = False,
    ward: Id | None = None,
) -> IncidentsPublic:
    page = await store.list_incidents(
        open_only=open_only,
        ward=ward,
        wards=principal.ward_scope,
        skip=skip,
        limit=limit,
        sort=sort,
    )
    return IncidentsPublic(
        data=[IncidentPublic.model_validate(i) for i in page.data], count=page.count
    )


@router.get(
    "/{incident_id}",
    response_model=IncidentPublic,
    responses=NOT_FOUND,
    summary="One incident with its child alert ids",
)
async def get_incident(
    incident_id: Annotated[int, Path(ge=1, le=2**62)], principal: Reader, store: StoreDep
) -> IncidentPublic:
    try:
        incident = await store.get_incident(incident_id)
    except NotFoundError:
        raise not_found(f"incident {incident_id}") from None
    principal.check_ward(incident.ward, f"incident {incident_id}")
    return IncidentPublic.model_validate(incident)
