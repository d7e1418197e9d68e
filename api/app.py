"""The app factory: ``create_app(settings)`` wires routers, errors, metrics and the lifespan.

Nothing is built at import time: the lifespan opens the store (running its migrations),
the InfluxDB client and the change-feed watcher, and closes them on shutdown. A caller that
already has a store (the ``citywatch`` composition root, tests) may pass it in; the app
then leaves closing it to the caller.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import make_url

from alerts.store import AlertStore
from api.devices import DeviceDirectory
from api.docs import serve_docs_offline
from api.errors import document_body_errors, install_error_handlers
from api.feed import ChangeFeed
from api.metrics import ApiMetrics, MetricsMiddleware
from api.routes import (
    alerts,
    catalogue,
    crew,
    devices,
    health,
    incidents,
    keys,
    me,
    silences,
    stream,
)
from api.services import Services
from api.settings import ApiSettings
from telemetry.influxdb import AsyncInfluxClient

log = logging.getLogger(__name__)

DESCRIPTION = """\
Alerts, incidents and devices of citywatch (Hanoi street cabinets and cable routes).

Authenticate with `Authorization: Bearer <key>` (`citywatch keys create`). Roles: `noc`
sees and acts on everything; `crew` sees and acts only in its wards (anything elsewhere
answers 404, as if it did not exist); `admin` manages keys; `noc` and `admin` manage
silences. Lists answer
`{"data": [...], "count": N}` with `skip`/`limit` paging and a `sort` parameter
(`sort=-raised_at,severity`: comma-separated fields, `-` for descending; severity sorts
by urgency). Times are answered as epoch milliseconds; where a request takes a time it
accepts epoch milliseconds or ISO 8601 with an offset or `Z` (`2026-12-08T09:00:00+07:00`).

Errors are RFC 9457 problem details (`application/problem+json`), one shape for all:
`type`, `title`, `status`, `detail` (a string to show as is) and `instance`; a validation
error (422) adds `errors`, one `{loc, msg, type}` per invalid field.
"""


def create_app(
    settings: ApiSettings | None = None,
    *,
    store: AlertStore | None = None,
    feed: ChangeFeed | None = None,
) -> FastAPI:
    """The API app. ``settings=None`` reads ``CITYWATCH_*`` from the environment at start-up.

    ``store``: a store the caller owns (the app does not close it); ``feed``: the change
    feed the SSE streams wait on, for a caller that writes the store in this process and
    pokes it after each write (the app starts and stops it). Without them the app opens
    its own, and its feed polls the store."""
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings if settings is not None else ApiSettings()
        own_store = store is None
        alert_store = store if store is not None else await AlertStore.open(config.store_url)
        token = config.influx_token.get_secret_value() if config.influx_token else None
        influx = AsyncInfluxClient(
            config.influx_url,
            config.influx_database,
            token=token,
            timeout_s=config.influx_timeout_s,
        )
        change_feed = feed or ChangeFeed(alert_store.last_change_id, poll_s=config.feed_poll_s)
        try:
            await change_feed.start()
            app.state.services = Services(
                settings=config,
                store=alert_store,
                influx=influx,
                devices=DeviceDirectory(influx, lookback_s=config.device_lookback_s),
                feed=change_feed,
                metrics=metrics,
            )
            log.info(
                "API ready (store %s, InfluxDB %s)", _redact(config.store_url), config.influx_url
            )
            yield
        finally:
            await change_feed.stop()
            await influx.aclose()
            if own_store:
                await alert_store.close()

    app = FastAPI(
        title="citywatch API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served below from local assets: a NOC may have no internet
        redoc_url=None,
    )
    serve_docs_offline(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    install_error_handlers(app)
    for module in (
        health,
        me,
        catalogue,
        stream,  # before /alerts/{id}: /alerts/stream is not an id
        alerts,
        incidents,
        silences,
        devices,
        keys,
        crew,
    ):
        document_body_errors(module.router)
        app.include_router(module.router)
    app.mount("/crew/assets", StaticFiles(directory=crew.STATIC), name="crew-assets")
    return app


def operation_id(route: APIRoute) -> str:
    """An operation's id: its endpoint's name in camelCase (``acknowledge_alert`` ->
    ``acknowledgeAlert``), so generated clients get meaningful method names."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _redact(url: str) -> str:
    """A store URL without its password, for logs."""
    return make_url(url).render_as_string(hide_password=True)
