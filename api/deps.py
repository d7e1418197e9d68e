"""``Annotated`` dependencies shared by the routers."""

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from alerts.model import Role
from alerts.store import AlertStore, Sort
from api.auth import Principal
from api.errors import invalid, unauthorized
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
SilenceManager = Annotated[Principal, _roles(Role.NOC, Role.ADMIN)]
"""Reads, creates and expires silences."""

Skip = Annotated[int, Query(ge=0, le=1_000_000, description="rows to skip")]
Limit = Annotated[int, Query(ge=1, le=1000, description="rows to return")]


def sort_by(fields: Mapping[str, object], example: str) -> Any:
    """The dependency of a ``sort`` query parameter over ``fields`` (a whitelist), for
    ``Annotated[tuple[Sort, ...], sort_by(...)]``: the sort keys, ``()`` when absent; 422
    naming the parameter for a field not in the list."""
    names = list(fields)

    def parse(
        sort: Annotated[
            str | None,
            Query(
                max_length=500,
                description="comma-separated fields, each optionally prefixed with - for "
                f"descending: {', '.join(names)}",
                examples=[example],
            ),
        ] = None,
    ) -> tuple[Sort, ...]:
        if sort is None:
            return ()
        try:
            return Sort.parse(sort, names)
        except ValueError as exc:
            raise invalid(("query", "sort"), str(exc), sort) from None

    return Depends(parse)
