"""``citywatch worker`` (a cluster worker) and ``citywatch partitions show|apply``."""

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from citywatch import exit_codes
from citywatch.options import DatabaseOpt, StoreOpt

console = Console(stderr=True)
T = TypeVar("T")

EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        envvar="CITYWATCH_ENGINE",
        help="RabbitMQ (AMQP) the devices publish into: amqp://USER:PASS@HOST:PORT/VHOST.",
    ),
]
PartitionsOpt = Annotated[
    int,
    typer.Option(
        "--partitions",
        envvar="CITYWATCH_PARTITIONS",
        min=1,
        max=1000,
        help="Partition queues; every worker must agree (refused on a mismatch).",
    ),
]


def worker(
    engine: EngineOpt,
    influx: Annotated[
        str,
        typer.Option(
            "--influx", envvar="CITYWATCH_INFLUX", help="InfluxDB v1 API, http://HOST:PORT."
        ),
    ],
    store: StoreOpt = None,
    database: DatabaseOpt = None,
    partitions: PartitionsOpt = 8,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", envvar="CITYWATCH_DATA_DIR", help="Local scratch.")
    ] = Path("var/citywatch-worker"),
    metrics_port: Annotated[
        int,
        typer.Option(
            "--metrics-port", envvar="CITYWATCH_METRICS_PORT", help="Prometheus /metrics (0: off)."
        ),
    ] = 0,
    snapshot_share: Annotated[
        float,
        typer.Option(
            "--snapshot-share",
            envvar="CITYWATCH_SNAPSHOT_SHARE",
            min=0.0,
            help="A checkpoint is saved in full when the deltas since the last full one "
            "would exceed this share of its size (else only what the batch changed).",
        ),
    ] = 1.0,
) -> None:
    """A cluster worker: owns the partitions RabbitMQ makes it the active consumer of.

    Declares the partition queues and every ward's binding (idempotent), then consumes
    every partition queue; per partition a detector checkpointed in the store's database
    together with the acks. Run as many as wanted, with the same --partitions.
    """
    from citywatch.cmd_run import _check_ports
    from citywatch.partitions import PartitionMismatchError
    from citywatch.pipeline import install_stop_signals
    from citywatch.worker import Worker, WorkerConfig

    if not store or not store.startswith(("postgresql", "sqlite")):
        raise typer.BadParameter("a worker needs the shared alert store", param_hint="--store")
    if not engine.startswith(("amqp://", "amqps://")):
        raise typer.BadParameter("amqp://USER:PASS@HOST:PORT/VHOST", param_hint="--engine")
    _check_ports("127.0.0.1", {"--metrics-port": metrics_port})
    config = WorkerConfig(
        engine=engine,
        influx=influx,
        store_url=store,
        database=database or "citywatch",
        partitions=partitions,
        data_dir=data_dir,
        metrics_port=metrics_port or None,
        snapshot_share=snapshot_share,
    )

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await Worker(config).run(stop)

    try:
        asyncio.run(main())
    except PartitionMismatchError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exit_codes.USAGE) from None
    except (ConnectionError, OSError) as exc:
        console.print(f"[red]error:[/] cannot reach the broker or the store: {exc}")
        raise typer.Exit(exit_codes.UNAVAILABLE) from None


partitions_app = typer.Typer(help="The partition map: wards → partition queues on RabbitMQ.")


def _wards() -> list[str]:
    from citywatch.partitions import catalogue

    return sorted(catalogue())


@partitions_app.command("show")
def partitions_show(
    engine: EngineOpt,
    wards: Annotated[bool, typer.Option("--wards", help="List every ward's partition.")] = False,
) -> None:
    """The partition queues on the broker: backlog, consumers, wards."""
    from citywatch import partitions

    async def main() -> tuple[list[partitions.QueueInfo], bool, bool]:
        connection = await partitions.connect(engine)
        try:
            locked = await partitions.queue_counts(connection, partitions.RESIZE_LOCK)
            routed = await partitions.exchange_exists(connection, partitions.CITY_EXCHANGE)
            return await partitions.show(connection, _wards()), locked is not None, routed
        finally:
            await connection.close()

    infos, resizing, routed = _run(main())
    if resizing:
        console.print(
            f"[yellow]a resize holds {partitions.RESIZE_LOCK}[/]: the partitions are being "
            "changed (or a resize stopped half-way); workers refuse to start meanwhile"
        )
    if not infos:
        console.print("no partition queues yet (citywatch partitions apply, or start a worker)")
        return
    if routed:
        console.print(
            f"routing: amq.topic → {partitions.CITY_EXCHANGE} → crc32(ward) mod {len(infos)}; "
            f"wards outside the catalogue → partition {partitions.UNKNOWN_WARD_PARTITION} "
            f"(alternate exchange {partitions.UNKNOWN_WARDS_EXCHANGE})"
        )
    else:
        console.print(
            f"[yellow]old routing[/]: the queues are bound to amq.topic directly and a ward "
            f"outside the catalogue matches no binding; citywatch partitions apply (or a "
            f"worker starting) moves them to {partitions.CITY_EXCHANGE} without a gap"
        )
    title = f"{len(infos)} partitions on {partitions.CITY_EXCHANGE} (crc32(ward) mod {len(infos)})"
    table = Table(title=title)
    for col in ("partition", "queue", "messages", "consumers", "wards"):
        table.add_column(col, justify="right" if col != "queue" else "left")
    fallback = partitions.UNKNOWN_WARD_PARTITION if routed else None
    for q in infos:
        count = f"{q.wards} + unknown" if q.partition == fallback else str(q.wards)
        table.add_row(str(q.partition), q.queue, str(q.messages), str(q.consumers), count)
    Console().print(table)
    if wards:
        for p, members in partitions.partition_map(_wards(), len(infos)).items():
            unknown = " (and every ward outside the catalogue)" if p == fallback else ""
            print(f"{p}\t{' '.join(members)}{unknown}")


@partitions_app.command("apply")
def partitions_apply(engine: EngineOpt, partitions_n: PartitionsOpt = 8) -> None:
    """Declare the partition queues and bind every ward (idempotent; a different number
    of partitions than the broker holds is refused)."""
    from citywatch import partitions

    async def main() -> dict[int, list[str]]:
        connection = await partitions.connect(engine)
        try:
            return await partitions.declare(connection, partitions_n, _wards())
        finally:
            await connection.close()

    try:
        mapping = _run(main())
    except partitions.PartitionMismatchError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exit_codes.USAGE) from None
    sizes = ", ".join(str(len(v)) for v in mapping.values())
    console.print(f"{len(mapping)} partitions declared; wards per partition: {sizes}")


@partitions_app.command("resize")
def partitions_resize(
    engine: EngineOpt, store: StoreOpt = None, partitions_n: PartitionsOpt = 8
) -> None:
    """Change the number of partitions, with every worker stopped (devices may go on
    publishing): the wards' bindings, the queued reports and the checkpoints' learned
    state move to the new partitions. Refused while any worker consumes."""
    from citywatch import partitions, repartition

    if not store or not store.startswith(("postgresql", "sqlite")):
        raise typer.BadParameter("the workers' shared store", param_hint="--store")

    async def main() -> repartition.ResizeReport:
        connection = await partitions.connect(engine)
        try:
            return await repartition.resize(
                connection, store, partitions_n, _wards(), console.print
            )
        finally:
            await connection.close()

    try:
        report = _run(main())
    except repartition.ResizeRefusedError as exc:
        console.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(exit_codes.USAGE) from None
    console.print(
        f"{report.old} → {report.new} partitions: {report.wards_moved} wards moved, "
        f"{report.messages_moved} queued messages moved, {report.series} series' state "
        f"regrouped from {report.checkpoints} checkpoints; start the workers with "
        f"--partitions {report.new}"
    )


def _run(coro: Coroutine[object, object, T]) -> T:
    try:
        return asyncio.run(coro)
    except (ConnectionError, OSError) as exc:
        console.print(f"[red]error:[/] cannot reach the broker: {exc}")
        raise typer.Exit(exit_codes.UNAVAILABLE) from None
