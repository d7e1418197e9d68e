"""``citywatch ingest``: run the MQTT → InfluxDB ingest service until SIGTERM/SIGINT."""

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from citywatch.options import BrokerOpt, DatabaseOpt, InfluxOpt

log = logging.getLogger(__name__)


def ingest(
    broker: BrokerOpt = None,
    influx: InfluxOpt = None,
    database: DatabaseOpt = None,
    spool_dir: Annotated[
        Path | None,
        typer.Option("--spool-dir", envvar="CITYWATCH_SPOOL_DIR", help="On-disk spool directory"),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", envvar="CITYWATCH_CONFIG", help="Settings file (.toml or .env)"),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", envvar="CITYWATCH_METRICS_PORT", help="/metrics port"),
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option("--client-id", envvar="CITYWATCH_CLIENT_ID", help="Fixed MQTT client id"),
    ] = None,
) -> None:
    """Take every device report from the broker and store it in InfluxDB, losing nothing."""
    from pydantic import ValidationError

    from ingest import IngestService, load_settings

    try:
        settings = load_settings(
            config,
            broker=broker,
            influx=influx,
            database=database,
            spool_dir=spool_dir,
            metrics_port=metrics_port,
            client_id=client_id,
        )
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            typer.echo(f"invalid setting {where}: {error['msg']}", err=True)
        raise typer.Exit(2) from None
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None

    stop = threading.Event()

    def _request_stop(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        log.info("%s received: draining", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    service = IngestService(settings)
    service.start()
    log.info(
        "ingest running: %s → %s/%s (spool %s)",
        settings.broker,
        settings.influx,
        settings.database,
        settings.spool_dir,
    )
    while not stop.wait(0.5):
        pass
    service.stop()
