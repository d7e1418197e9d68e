"""``citywatch api``: serve the HTTP API (alerts, devices, SSE, crew page) with uvicorn."""

import logging
from typing import Annotated

import typer

from citywatch.options import DatabaseOpt, InfluxOpt, StoreOpt

log = logging.getLogger(__name__)


def api(
    store: StoreOpt = None,
    influx: InfluxOpt = None,
    database: DatabaseOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port")] = 8000,
) -> None:
    """Serve the API. Other settings come from CITYWATCH_* (see api.settings.ApiSettings)."""
    import uvicorn
    from pydantic import ValidationError

    from alerts.engine import StoreUrlError, make_engine
    from api import ApiSettings, create_app

    given = {"store_url": store, "influx_url": influx, "influx_database": database}
    overrides = {name: value for name, value in given.items() if value is not None}
    try:
        settings = ApiSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            typer.echo(f"invalid setting {where}: {error['msg']}", err=True)
        raise typer.Exit(2) from None
    try:
        make_engine(settings.store_url).sync_engine.dispose()  # validates the URL, no connection
    except StoreUrlError as exc:
        typer.echo(f"invalid --store: {exc}", err=True)
        raise typer.Exit(2) from None
    log.info("citywatch API on http://%s:%d (crew page: /crew, docs: /docs)", host, port)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)
