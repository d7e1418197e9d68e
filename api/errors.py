"""Error responses: RFC 9457 problem details (``application/problem+json``), one shape.

Every error the API answers (400, 401, 403, 404, 405, 409, 422, 503, 500) is a
:class:`ProblemDetails`: ``type`` (``about:blank``: the status says it all), ``title``
(the status' phrase), ``status``, ``detail`` (always a string a client can show as is) and
``instance`` (the request's path, without its query, which may carry a stream ticket).
Validation errors add ``errors``, one entry per field: its path (``loc``, e.g.
``["body", "ward"]``), ``msg`` and ``type``; their ``detail`` lists the same in one line.

Routes raise :class:`fastapi.HTTPException` (or the helpers here) or
:class:`fastapi.exceptions.RequestValidationError`; anything unexpected becomes a 500
with a generic message (the traceback goes to the log, not to the client). The OpenAPI
document is rewritten once so that every error response of every operation names the one
``ProblemDetails`` schema (:func:`document_problems`).
"""

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from telemetry.influxdb import InfluxError, InfluxUnavailableError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemError(BaseModel):
    """One invalid field of a request."""

    loc: list[str | int] = Field(
        description='where: the part of the request, then the field path, e.g. ["body", "ward"]'
    )
    msg: str = Field(description="what is wrong with it")
    type: str = Field(description="the kind of error, e.g. value_error, missing")


class ProblemDetails(BaseModel):
    """An error (RFC 9457 problem details): what went wrong, in words a client can show."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="the problem type; about:blank: see status")
    title: str = Field(description="the HTTP status' phrase")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="this occurrence, in words a client can show as is")
    instance: str = Field(description="the request path that failed")
    errors: list[ProblemError] | None = Field(
        None, description="validation errors only: one entry per invalid field"
    )


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem(
    request: Request,
    status_code: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: Sequence[ProblemError] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """The problem-details response for an error on ``request``."""
    body = ProblemDetails(
        title=_phrase(status_code),
        status=status_code,
        detail=detail,
        instance=request.url.path,
        errors=list(errors) if errors is not None else None,
        **extra,
    )
    return ProblemResponse(
        body.model_dump(exclude_none=True), status_code=status_code, headers=headers
    )


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


Responses = dict[int | str, dict[str, Any]]


def _doc(code: int, description: str) -> Responses:
    return {code: {"description": description}}  # content: see document_problems


UNAUTHORIZED = _doc(401, "Missing, malformed, unknown or revoked API key")
FORBIDDEN = _doc(403, "The key's role may not do this")
NOT_FOUND = _doc(404, "No such resource (or not in the crew's wards)")
CONFLICT = _doc(409, "The action does not apply to the resource's current state")
UNAVAILABLE = _doc(503, "A backing service (store or InfluxDB) is unreachable")
BAD_BODY = _doc(400, "The request body could not be read as JSON text (not UTF-8)")
UNEXPECTED = _doc(500, "An unexpected error (the details are in the API log)")

AUTHED: Responses = {**UNAUTHORIZED, **FORBIDDEN}
"""Responses every authenticated route documents."""


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


def invalid(loc: tuple[str | int, ...], msg: str, value: object) -> RequestValidationError:
    """A 422 for one field that passed its type but not a route's own check."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": msg, "input": value}])


class BackendUnavailableError(RuntimeError):
    """InfluxDB or the store could not be reached; answered as 503."""


def document_body_errors(router: APIRouter) -> None:
    """Document on every operation that takes a body the 400 FastAPI answers before
    validation when the body is not text ("There was an error parsing the body": bytes
    that are not UTF-8). Schemathesis found it undocumented; validation errors stay 422."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.body_field is not None:
            route.responses = {**BAD_BODY, **route.responses}


def validation_problems(errors: Sequence[Any]) -> list[ProblemError]:
    """Pydantic's / FastAPI's error dicts as :class:`ProblemError` (no input echoed)."""
    return [
        ProblemError(
            loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            msg=str(e.get("msg", "invalid")),
            type=str(e.get("type", "value_error")),
        )
        for e in errors
    ]


def _summary(errors: Sequence[ProblemError], shown: int = 5) -> str:
    parts = [f"{'.'.join(str(p) for p in e.loc) or 'request'}: {e.msg}" for e in errors[:shown]]
    more = f" (and {len(errors) - shown} more)" if len(errors) > shown else ""
    return "; ".join(parts) + more if parts else "the request is not valid"


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as problem details, and document them so."""
    document_problems(app)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
        headers = dict(exc.headers) if exc.headers else None
        return problem(request, exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> ProblemResponse:
        errors = validation_problems(exc.errors())
        return problem(request, 422, _summary(errors), errors=errors)

    @app.exception_handler(BackendUnavailableError)
    async def _backend(request: Request, exc: BackendUnavailableError) -> ProblemResponse:
        log.warning("backend unavailable: %s", exc)
        return problem(request, 503, str(exc))

    @app.exception_handler(InfluxError)
    async def _influx(request: Request, exc: InfluxError) -> ProblemResponse:
        log.warning("InfluxDB: %s", exc)  # the details (its address) stay in the log
        what = "unreachable" if isinstance(exc, InfluxUnavailableError) else "refused a query"
        return problem(request, 503, f"InfluxDB {what}; see the API log")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> ProblemResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(request, 500, "internal server error; see the API log")


_REPLACED = ("HTTPValidationError", "ValidationError")
"""FastAPI's own error schemas, which no operation names once the errors are problems."""


def document_problems(app: FastAPI) -> None:
    """Rewrite the app's OpenAPI document (once, when first asked for) so that every
    error response of every operation, FastAPI's own 422 included, is
    ``application/problem+json`` with the one ``ProblemDetails`` schema, and every
    operation documents the 500 it may answer."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        ref = {"$ref": "#/components/schemas/ProblemDetails"}
        content = {PROBLEM_JSON: {"schema": ref}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.setdefault("500", {"description": UNEXPECTED[500]["description"]})
                for code, response in responses.items():
                    if code == "default" or code[0] in "45":
                        response["content"] = content
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = ProblemDetails.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components.update(problem_schema.pop("$defs", {}))
        components["ProblemDetails"] = problem_schema
        for name in _REPLACED:
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
