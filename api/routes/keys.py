"""API keys (admin): create (the secret is shown once), list, revoke."""

from typing import Annotated

from fastapi import APIRouter, Path, status
from fastapi.exceptions import RequestValidationError

from alerts.store import NotFoundError
from api.deps import Admin, StoreDep
from api.errors import AUTHED, NOT_FOUND, not_found
from api.schemas import KeyCreate, KeyCreatedPublic, KeyPublic, KeysPublic

router = APIRouter(prefix="/keys", tags=["keys"], responses=AUTHED)


@router.get("", response_model=KeysPublic, summary="List API keys (never their secrets)")
async def list_keys(_principal: Admin, store: StoreDep) -> KeysPublic:
    keys = await store.list_api_keys()
    return KeysPublic(data=[KeyPublic.model_validate(k) for k in keys], count=len(keys))


@router.post(
    "",
    response_model=KeyCreatedPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Create a key; its secret is in this response only",
)
async def create_key(body: KeyCreate, _principal: Admin, store: StoreDep) -> KeyCreatedPublic:
    try:
        record, key = await store.create_api_key(
            body.role, body.wards, name=body.name, lang=body.lang
        )
    except ValueError as exc:
        error = {"type": "value_error", "loc": ("body", "wards"), "msg": str(exc)}
        raise RequestValidationError([{**error, "input": body.wards}]) from None
    return KeyCreatedPublic(**KeyPublic.model_validate(record).model_dump(), key=key)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
    summary="Revoke a key",
)
async def revoke_key(
    key_id: Annotated[str, Path(pattern="^[0-9a-f]{12}$")], _principal: Admin, store: StoreDep
) -> None:
    try:
        await store.revoke_api_key(key_id)
    except NotFoundError:
        raise not_found(f"active API key {key_id}") from None
