"""CLI options shared by several commands: one spelling, one env variable, one help text."""

from typing import Annotated

import typer

BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker", envvar="CITYWATCH_BROKER", help="MQTT broker, mqtt://\\[user:pass@]HOST:PORT."
    ),
]
InfluxOpt = Annotated[
    str | None,
    typer.Option("--influx", envvar="CITYWATCH_INFLUX", help="InfluxDB v1 API, http://HOST:PORT."),
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option("--database", envvar="CITYWATCH_DATABASE", help="InfluxDB database."),
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="CITYWATCH_STORE_URL",
        help="Alert store: sqlite:///PATH or postgresql://USER@HOST/DB.",
    ),
]
