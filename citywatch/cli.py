"""The ``citywatch`` command: wiring only; each sub-command lives in its own module."""

import logging

import typer
from rich.logging import RichHandler

app = typer.Typer(
    name="citywatch",
    help="Telemetry and outage alerts for Hanoi's telecom street cabinets and cable routes.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _setup(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(show_path=False, rich_tracebacks=True)],
    )
    # One line per HTTP request, or per Alembic plugin loaded, is noise at INFO; our own
    # modules (and Alembic's migration steps) log what matters.
    for chatty in ("httpx", "httpcore", "alembic.runtime.plugins"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if verbose else logging.WARNING)


from citywatch.cmd_ingest import ingest  # noqa: E402

app.command("ingest")(ingest)

from citywatch.cmd_simulate import simulate  # noqa: E402

app.command("simulate")(simulate)

from citywatch.cmd_detect import detect  # noqa: E402

app.command("detect")(detect)

from citywatch.cmd_bench import bench_app  # noqa: E402

app.add_typer(bench_app, name="bench")

from citywatch.cmd_api import api  # noqa: E402

app.command("api")(api)

from citywatch.cmd_keys import keys_app  # noqa: E402

app.add_typer(keys_app, name="keys")

from citywatch.cmd_run import demo, run  # noqa: E402

app.command("run")(run)
app.command("demo")(demo)

from citywatch.cmd_worker import partitions_app, worker  # noqa: E402

app.command("worker")(worker)
app.add_typer(partitions_app, name="partitions")


def main() -> None:
    """Console-script entry point."""
    app()
