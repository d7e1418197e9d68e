"""The caller's own identity (the crew page shows it and uses the name to self-assign)."""

from fastapi import APIRouter

from api.deps import Reader
from api.errors import UNAUTHORIZED
from api.schemas import MePublic

router = APIRouter(tags=["auth"], responses=UNAUTHORIZED)


@router.get("/me", response_model=MePublic, summary="Who the presented key is")
async def get_me(principal: Reader) -> MePublic:
    key = principal.key
    return MePublic(
        id=key.id, name=principal.actor, role=key.role, wards=list(key.wards), lang=key.lang
    )
