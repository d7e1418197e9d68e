"""``Annotated`` dependencies shared by the routers."""

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from alerts.model import Role
from alerts.store import AlertStore
from api.auth import Principal
from api.errors import unauthorized
from api.services import Services

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `citywatch keys create`, sent as `Authorization: Bearer <key>`",
)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_store(services: ServicesDep) -> AlertStore:
    return services.store


StoreDep = Annotated[AlertStore, Depends(get_store)]


async def get_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise unauthorized("missing `Authorization: Bearer <key>` header")
    key = await services.store.verify_api_key(credentials.credentials)
    if key is None:
        raise unauthorized("unknown or revoked API key")
    return Principal(key)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def _roles(*roles: Role) -> object:
    def check(principal: PrincipalDep) -> Principal:
        principal.require(*roles)
        return principal

    return Depends(check)


Reader = Annotated[Principal, _roles(Role.NOC, Role.CREW, Role.ADMIN)]
"""Any valid key (crews see their wards only)."""
Operator = Annotated[Principal, _roles(Role.NOC, Role.CREW)]
"""Acts on alerts (crews in their wards only)."""
Admin = Annotated[Principal, _roles(Role.ADMIN)]
SilenceReader = Annotated[Principal, _roles(Role.ADMIN, Role.NOC)]

Skip = Annotated[int, Query(ge=0, le=1_000_000, description="rows to skip")]
Limit = Annotated[int, Query(ge=1, le=1000, description="rows to return")]
