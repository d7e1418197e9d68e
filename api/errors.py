"""Error responses: one JSON shape (``{"detail": ...}`` as FastAPI answers) and its OpenAPI docs.

Routes raise :class:`fastapi.HTTPException` (or the helpers here); validation errors keep
FastAPI's precise ``{"detail": [{"loc", "msg", "type"}]}``. Anything unexpected becomes a
500 with a generic message (the traceback goes to the log, not to the client).
"""

import logging
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from telemetry.influxdb import InfluxError, InfluxUnavailableError

log = logging.getLogger(__name__)


class ErrorPublic(BaseModel):
    """An error: what went wrong, in words a client can show."""

    detail: str


Responses = dict[int | str, dict[str, Any]]


def _doc(code: int, description: str) -> Responses:
    return {code: {"model": ErrorPublic, "description": description}}


UNAUTHORIZED = _doc(401, "Missing, malformed, unknown or revoked API key")
FORBIDDEN = _doc(403, "The key's role may not do this")
NOT_FOUND = _doc(404, "No such resource (or not in the crew's wards)")
CONFLICT = _doc(409, "The action does not apply to the resource's current state")
UNAVAILABLE = _doc(503, "A backing service (store or InfluxDB) is unreachable")
BAD_BODY = _doc(400, "The request body could not be read as JSON text (not UTF-8)")

AUTHED: Responses = {**UNAUTHORIZED, **FORBIDDEN}
"""Responses every authenticated route documents."""


def json_errors(responses: Responses) -> Responses:
    """The same responses, explicitly JSON: for routes whose success is not JSON (SSE)."""
    ref = {"$ref": "#/components/schemas/ErrorPublic"}
    return {
        code: {"description": doc["description"], "content": {"application/json": {"schema": ref}}}
        for code, doc in responses.items()
    }


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def forbidden(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} not found")


def conflict(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, detail=detail)


def unavailable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail)


class BackendUnavailableError(RuntimeError):
    """InfluxDB or the store could not be reached; answered as 503."""


def document_body_errors(router: APIRouter) -> None:
    """Document on every operation that takes a body the 400 FastAPI answers before
    validation when the body is not text ("There was an error parsing the body": bytes
    that are not UTF-8). Schemathesis found it undocumented; validation errors stay 422."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.body_field is not None:
            route.responses = {**BAD_BODY, **route.responses}


def install_error_handlers(app: FastAPI) -> None:
    """JSON for the errors FastAPI does not already answer as JSON."""

    @app.exception_handler(BackendUnavailableError)
    async def _backend(_request: Request, exc: BackendUnavailableError) -> JSONResponse:
        log.warning("backend unavailable: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(InfluxError)
    async def _influx(_request: Request, exc: InfluxError) -> JSONResponse:
        log.warning("InfluxDB: %s", exc)  # the details (its address) stay in the log
        what = "unreachable" if isinstance(exc, InfluxUnavailableError) else "refused a query"
        return JSONResponse({"detail": f"InfluxDB {what}; see the API log"}, status_code=503)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal server error"}, status_code=500)
