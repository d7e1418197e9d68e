"""``citywatch run`` (the platform in one process) and ``citywatch demo`` (the platform
with a simulated Hanoi city playing a scenario)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console

from citywatch import exit_codes
from citywatch.local_services import LocalInfluxd, LocalMosquitto, ServiceError, free_port
from citywatch.options import BrokerOpt, DatabaseOpt, InfluxOpt, StoreOpt

if TYPE_CHECKING:
    from rich.table import Table

    from citywatch.pipeline import PipelineConfig

# The platform's modules (pipeline, store, API) load inside the commands, not here, so
# that `citywatch --help` and the other commands start at once.

log = logging.getLogger(__name__)
console = Console(stderr=True)

DEFAULT_DATA_DIR = Path("var/citywatch")


@dataclass(frozen=True)
class Endpoints:
    broker: str
    influx: str


@contextlib.contextmanager
def local_services(broker: str | None, influx: str | None, data_dir: Path) -> Iterator[Endpoints]:
    """The given broker and InfluxDB, or private ones started here for the run."""
    with contextlib.ExitStack() as stack:
        if broker is None:
            root = data_dir / "mosquitto"
            root.mkdir(parents=True, exist_ok=True)
            broker = stack.enter_context(LocalMosquitto(root)).url
            console.print(f"started a private Mosquitto at {broker} (data in {root})")
        if influx is None:
            root = data_dir / "influxdb"
            root.mkdir(parents=True, exist_ok=True)
            influx = stack.enter_context(LocalInfluxd(root)).url
            console.print(f"started a private InfluxDB at {influx} (data in {root})")
        yield Endpoints(broker, influx)


def _check_ticket_secret() -> None:
    """A CITYWATCH_TICKET_SECRET given in the environment must be a real one (the run
    generates and keeps its own when none is given)."""
    import os

    from pydantic import ValidationError

    from api import ApiSettings

    given = os.environ.get("CITYWATCH_TICKET_SECRET")
    if given is None:
        return
    try:
        ApiSettings(ticket_secret=given)  # type: ignore[arg-type]
    except ValidationError as exc:
        reason = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise typer.BadParameter(reason, param_hint="CITYWATCH_TICKET_SECRET") from None


def _check_urls(broker: str | None, influx: str | None, api_port: int) -> None:
    from ingest.source import parse_broker_url

    if broker is not None:
        try:
            parse_broker_url(broker)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--broker") from None
    if influx is not None:
        parts = urlsplit(influx)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise typer.BadParameter(
                f"{influx!r} is not an http(s)://HOST:PORT URL", param_hint="--influx"
            )
    if not 0 < api_port < 65536:
        raise typer.BadParameter(f"must be 1-65535, got {api_port}", param_hint="--api-port")


def _check_ports(host: str, ports: dict[str, int]) -> None:
    """Every port the run will serve on is free, before anything starts: a taken port
    found later would come after ingest had consumed (and acknowledged) messages. One
    line and exit 69 (unavailable) if not."""
    for flag, port in ports.items():
        if not port:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                console.print(
                    f"[red]error:[/] {flag} {port} on {host} is taken ({exc.strerror}); "
                    "stop what serves there or choose another port"
                )
                raise typer.Exit(exit_codes.UNAVAILABLE) from None


@contextlib.contextmanager
def forced_exit() -> Iterator[None]:
    """A second Ctrl-C abandons the drain. The ``with`` blocks inside have stopped the
    private servers by the time it gets here, but ingest's threads would keep the
    interpreter alive: leave at once, 130 = 128 + SIGINT. Nothing is lost: reports not
    yet acknowledged stay queued on the broker for the next start."""
    try:
        yield
    except KeyboardInterrupt:
        console.print("forced stop: reports not yet written stay queued on the broker")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_codes.INTERRUPTED)


@contextlib.contextmanager
def _services_for_the_run(
    broker: str | None, influx: str | None, data_dir: Path
) -> Iterator[Endpoints]:
    """:func:`local_services` for a whole run: a server that cannot start exits 1 with
    its reason; a second Ctrl-C exits at once after they stop (:func:`forced_exit`)."""
    with forced_exit():
        try:
            with local_services(broker, influx, data_dir) as ends:
                yield ends
        except ServiceError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(exit_codes.FAILED) from None


def _run_loop(main: Coroutine[None, None, None]) -> None:
    """``asyncio.run``, then ignore stop signals: the loop's handlers went with it, and a
    supervisor's repeated SIGTERM (or a late Ctrl-C) must not kill a run that has drained
    while it stops its private servers."""
    asyncio.run(main)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _default_store(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{(data_dir / 'alerts.db').resolve()}"


async def _serve(config: PipelineConfig) -> None:
    from citywatch.pipeline import Pipeline, install_stop_signals

    stop = asyncio.Event()
    install_stop_signals(stop)
    await Pipeline(config).run(stop)


def _run_pipeline(main: Coroutine[None, None, None]) -> None:
    """:func:`_run_loop`; a port taken since the check is one line and exit 69."""
    from citywatch.pipeline import PortTakenError

    try:
        _run_loop(main)
    except PortTakenError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exit_codes.UNAVAILABLE) from None


ApiPortOpt = Annotated[int, typer.Option(envvar="CITYWATCH_API_PORT", help="API port.")]
ApiHostOpt = Annotated[str, typer.Option(envvar="CITYWATCH_API_HOST", help="API address.")]
DataDirOpt = Annotated[
    Path,
    typer.Option(
        envvar="CITYWATCH_DATA_DIR",
        help="Spool, detector checkpoint, SQLite store and private servers' data.",
    ),
]
RoutesOpt = Annotated[
    Path | None,
    typer.Option(
        envvar="CITYWATCH_ROUTES",
        help="Routing file of the Telegram, Zalo and e-mail receivers (YAML; see "
        "deploy/routes.example.yaml).",
    ),
]


def _check_routes(routes: Path | None) -> None:
    """Validate the routing file (and that its secrets are in the environment) before
    anything starts: every problem with its file, path and field."""
    if routes is None:
        return
    from alerts.notify import RoutesError, load_routes

    try:
        load_routes(routes)
    except RoutesError as exc:
        raise typer.BadParameter(f"\n{exc}", param_hint="--routes") from None


MetricsPortOpt = Annotated[
    int, typer.Option(envvar="CITYWATCH_METRICS_PORT", help="Prometheus /metrics of ingest.")
]


def run(
    broker: BrokerOpt = None,
    influx: InfluxOpt = None,
    database: DatabaseOpt = None,
    store: StoreOpt = None,
    api_port: ApiPortOpt = 8000,
    api_host: ApiHostOpt = "127.0.0.1",
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    metrics_port: MetricsPortOpt = 9108,
    webhook_url: Annotated[
        str | None, typer.Option(envvar="CITYWATCH_WEBHOOK_URL", help="POST alert changes here.")
    ] = None,
    webhook_secret: Annotated[
        str | None,
        typer.Option(envvar="CITYWATCH_WEBHOOK_SECRET", help="HMAC key signing webhook bodies."),
    ] = None,
    routes: RoutesOpt = None,
) -> None:
    """Ingest, detector, alerts and API in one process (Ctrl-C or SIGTERM drains and stops).

    Without --broker or --influx, a private Mosquitto or influxd is started for the run.
    """
    from citywatch.pipeline import PipelineConfig

    _check_urls(broker, influx, api_port)
    _check_ticket_secret()
    if webhook_url and not webhook_secret:
        raise typer.BadParameter("a webhook needs --webhook-secret", param_hint="--webhook-url")
    _check_routes(routes)
    _check_ports(api_host, {"--api-port": api_port, "--metrics-port": metrics_port})
    data_dir.mkdir(parents=True, exist_ok=True)
    with _services_for_the_run(broker, influx, data_dir) as ends:
        config = PipelineConfig(
            broker=ends.broker,
            influx=ends.influx,
            database=database or "citywatch",
            store_url=store or _default_store(data_dir),
            data_dir=data_dir,
            api_host=api_host,
            api_port=api_port,
            metrics_port=metrics_port,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            routes=routes,
        )
        _run_pipeline(_serve(config))


# ----------------------------------------------------------------------------- demo


async def _demo_keys(store_url: str, wards: list[str]) -> tuple[str, str]:
    from alerts.store import AlertStore

    store = await AlertStore.open(store_url)
    try:
        _, noc = await store.create_api_key("noc", [], name="demo NOC")
        _, crew = await store.create_api_key("crew", wards, name="demo crew")
    finally:
        await store.close()
    return noc, crew


def _status_table(api: str, noc_key: str, sim: subprocess.Popen[bytes], started: float) -> Table:
    import httpx
    from rich.table import Table

    table = Table(title="citywatch demo", show_header=False, expand=False)
    table.add_column(style="bold")
    table.add_column()
    headers = {"Authorization": f"Bearer {noc_key}"}
    try:
        alerts = httpx.get(
            f"{api}/alerts", params={"limit": 500}, headers=headers, timeout=2
        ).json()
        active = httpx.get(
            f"{api}/alerts", params={"state": "active", "limit": 1}, headers=headers, timeout=2
        ).json()
        incidents = httpx.get(
            f"{api}/incidents", params={"limit": 1}, headers=headers, timeout=2
        ).json()
        by_type: dict[str, int] = {}
        for alert in alerts["data"]:
            if alert["raised_at"] is not None:
                by_type[alert["type"]] = by_type.get(alert["type"], 0) + 1
        table.add_row("alerts raised", str(sum(by_type.values())))
        table.add_row("  by type", ", ".join(f"{k} {v}" for k, v in sorted(by_type.items())) or "—")
        table.add_row("active now", str(active["count"]))
        table.add_row("incidents", str(incidents["count"]))
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        table.add_row("API", f"not answering yet ({type(exc).__name__})")
    state = "running" if sim.poll() is None else f"finished (exit {sim.returncode})"
    table.add_row("simulated city", state)
    table.add_row("elapsed", f"{time.monotonic() - started:,.0f} s")
    return table


async def _demo(
    config: PipelineConfig,
    sim_args: list[str],
    wards: list[str],
    linger: bool,
    labels: Path,
) -> None:
    from rich.live import Live

    from citywatch.pipeline import Pipeline, install_stop_signals

    stop = asyncio.Event()
    install_stop_signals(stop)
    noc_key, crew_key = await _demo_keys(config.store_url, wards)
    pipeline = Pipeline(config)
    running = asyncio.create_task(pipeline.run(stop))
    ready = asyncio.create_task(pipeline.ready.wait())
    await asyncio.wait({running, ready}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        running.result()
        return
    api = pipeline.api_url
    console.rule("citywatch demo")
    console.print(f"API          {api}/docs   (NOC key: {noc_key})")
    console.print(f"crew page    {api}/crew   (crew key for {', '.join(wards)}: {crew_key})")
    console.print(
        f"metrics      {api}/metrics   ingest: http://127.0.0.1:{config.metrics_port}/metrics"
    )
    console.print(f"InfluxDB     {config.influx}  database {config.database}")
    console.print("Grafana      with docker compose: http://localhost:3000 (see README)")
    console.rule()
    sim = subprocess.Popen(sim_args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started = time.monotonic()
    try:
        with Live(
            _status_table(api, noc_key, sim, started), console=console, refresh_per_second=1
        ) as live:
            scored = False
            while not stop.is_set() and not running.done():
                live.update(await asyncio.to_thread(_status_table, api, noc_key, sim, started))
                if sim.poll() is not None and not scored:
                    await asyncio.sleep(5)  # the last reports through detection to alerts
                    live.update(await asyncio.to_thread(_status_table, api, noc_key, sim, started))
                    if labels.exists():
                        await asyncio.to_thread(_print_scorecard, api, noc_key, labels)
                    scored = True
                    if not linger:
                        break
                await asyncio.sleep(1)
        if sim.poll() is None:
            sim.terminate()
        _, err = await asyncio.to_thread(sim.communicate)
        for line in err.decode(errors="replace").splitlines()[-4:]:
            console.print(f"simulator: {line}")
    finally:
        stop.set()
        await running


def _print_scorecard(api: str, key: str, labels: Path) -> None:
    """The demo scores itself against the ground truth the simulator wrote."""
    import httpx

    from citywatch.scorecard import score
    from simulators.labels import read_labels

    alerts: list[dict[str, object]] = []
    try:
        while True:
            page = httpx.get(
                f"{api}/alerts",
                params={"skip": len(alerts), "limit": 500},
                headers={"Authorization": f"Bearer {key}"},
                timeout=10,
            ).json()
            alerts += page["data"]
            if len(alerts) >= page["count"] or not page["data"]:
                break
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        console.print(f"scorecard: the API did not answer ({type(exc).__name__})")
        return
    console.rule("against the ground truth")
    for line in score(read_labels(labels), alerts).lines():
        console.print(line)


def demo(
    devices: Annotated[int, typer.Option(help="Simulated fleet size.")] = 600,
    scenario: Annotated[str, typer.Option(help="Scenario (shipped name or file).")] = (
        "monsoon_evening"
    ),
    speed: Annotated[float, typer.Option(help="Time compression of the simulation.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city.")] = 7,
    api_port: ApiPortOpt = 8000,
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its data.")] = Path(
        "var/demo"
    ),
    linger: Annotated[
        bool, typer.Option(help="Keep serving after the scenario ends (until Ctrl-C).")
    ] = True,
    routes: RoutesOpt = None,
) -> None:
    """A simulated Hanoi playing a scenario through the whole platform; shows where to look.

    Starts a private Mosquitto and InfluxDB, the pipeline and API, and the simulators
    (time-compressed), with a live summary of alerts and incidents.
    """
    from citywatch.pipeline import PipelineConfig

    if devices < 1:
        raise typer.BadParameter(f"must be at least 1, got {devices}", param_hint="--devices")
    if speed <= 0:
        raise typer.BadParameter(f"must be positive, got {speed:g}", param_hint="--speed")
    _check_urls(None, None, api_port)
    _check_ticket_secret()
    _check_routes(routes)
    _check_ports("127.0.0.1", {"--api-port": api_port})
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "labels.csv").unlink(missing_ok=True)  # an earlier demo's ground truth
    with _services_for_the_run(None, None, data_dir) as ends:
        config = PipelineConfig(
            broker=ends.broker,
            influx=ends.influx,
            store_url=_default_store(data_dir),
            data_dir=data_dir,
            api_port=api_port,
            metrics_port=free_port(),
            routes=routes,
        )
        citywatch = Path(sys.argv[0]).resolve()
        exe = (
            [str(citywatch)]
            if citywatch.name == "citywatch"
            else [sys.executable, "-m", "citywatch"]
        )
        sim_args = [
            *exe,
            "simulate",
            "--broker",
            ends.broker,
            "--devices",
            str(devices),
            "--scenario",
            scenario,
            "--speed",
            str(speed),
            "--seed",
            str(seed),
            "--labels",
            str(data_dir / "labels.csv"),
            "--no-progress",
        ]
        wards = ["phuong_hoang_mai", "phuong_dinh_cong", "phuong_thanh_xuan"]
        _run_pipeline(_demo(config, sim_args, wards, linger, data_dir / "labels.csv"))
    labels = data_dir / "labels.csv"
    if labels.exists():
        console.print(f"ground truth of the injected faults: {labels}")
    else:
        console.print("no ground truth written: the simulated city did not get to run")
