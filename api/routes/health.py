"""Probes and self-metrics: ``/health`` (alive), ``/ready`` (store and InfluxDB answer),
``/metrics`` (Prometheus text format)."""

import asyncio
import hmac
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ServicesDep
from api.errors import forbidden, problem, unauthorized
from api.schemas import HealthPublic, ReadyPublic

log = logging.getLogger(__name__)
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic, summary="Liveness: the process answers")
async def get_health() -> HealthPublic:
    return HealthPublic(status="ok")


@router.get(
    "/ready",
    response_model=ReadyPublic,
    responses={
        503: {
            "description": "The store or InfluxDB is down: a problem whose extra members "
            "`store` and `influx` say which answers"
        }
    },
    summary="Readiness: the store and InfluxDB are reachable",
)
async def get_readiness(request: Request, services: ServicesDep) -> JSONResponse:
    async def store_ok() -> bool:
        try:
            await asyncio.wait_for(services.store.ping(), 5.0)
        except Exception:
            log.warning("readiness: store unreachable", exc_info=True)
            return False
        return True

    store, influx = await asyncio.gather(store_ok(), services.influx.ping())
    if store and influx:
        return JSONResponse(ReadyPublic(status="ready", store=True, influx=True).model_dump())
    down = " and ".join(name for name, ok in (("the store", store), ("InfluxDB", influx)) if not ok)
    return problem(request, 503, f"not ready: {down} unreachable", store=store, influx=influx)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus metrics"},
        401: {"description": "CITYWATCH_METRICS_TOKEN is set and was not sent"},
        403: {"description": "no token is set and the client is not on this machine"},
    },
    summary="Prometheus metrics of this API process",
)
async def get_metrics(request: Request, services: ServicesDep) -> Response:
    token = services.settings.metrics_token
    if token is not None:
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(request.headers.get("authorization", ""), expected):
            raise unauthorized("send `Authorization: Bearer <CITYWATCH_METRICS_TOKEN>`")
    elif request.client is None or request.client.host not in _LOOPBACK:
        raise forbidden("/metrics answers loopback clients only; set CITYWATCH_METRICS_TOKEN")
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
