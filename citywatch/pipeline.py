"""The whole platform in one process: ingest → detector → alerts → API (wiring only).

Ingest runs on its own threads (paho's network loop, the durable writer, the sink thread);
the detector is plugged in as an ingest sink and runs on ingest's sink thread, on each
batch in order once it is durable and acknowledged.
Its detections cross into the asyncio loop, where the alert store, the notifiers and the
API (uvicorn, in-process) live. The InfluxDB export of alert changes and each notifier
follow the store's change feed with durable cursors of their own (:mod:`alerts.feed`), so
a crash loses neither. Shutdown drains in order: the API stops taking requests, ingest
drains and acknowledges, the last detections reach the store, the feed's followers catch
up, the detector's state is checkpointed so a restart keeps its baselines.
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from alerts.correlation import DeviceLocation
from alerts.feed import FeedFollower, Handled, consumer_name
from alerts.influx import alert_lines
from alerts.model import AlertChange
from alerts.notify import (
    MqttNotifier,
    ReceiverFollower,
    WebhookNotifier,
    load_routes,
    notify_follower,
    receiver_followers,
)
from alerts.store import AlertStore
from anomaly import Detection, Detector, DetectorConfig
from api.app import create_app
from api.feed import ChangeFeed
from api.settings import ApiSettings
from citywatch import kernel_ready
from citywatch.detector_sink import DataClock, DetectorSink
from citywatch.kept_secret import kept_secret
from ingest import IngestService, load_settings
from ingest.batch import PendingBatch
from ingest.registry import DeviceRegistry
from ingest.source import parse_broker_url
from telemetry.backoff import Backoff
from telemetry.influxdb import AsyncInfluxClient, InfluxError
from telemetry.wards import display_name

log = logging.getLogger(__name__)


_MAX_DETECTIONS_PER_WRITE = 200


@dataclass(frozen=True)
class PipelineConfig:
    """Where everything is. ``None`` broker/influx means: start private local servers."""

    broker: str
    influx: str
    database: str = "citywatch"
    store_url: str = "sqlite+aiosqlite:///var/citywatch/alerts.db"
    data_dir: Path = Path("var/citywatch")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    metrics_port: int = 9108
    webhook_url: str | None = None
    webhook_secret: str | None = None
    notify_mqtt: bool = True
    notify_client_id: str | None = None
    """MQTT client id of the alert notifier; unique per process when not given."""
    routes: Path | None = None
    """The routing file of the Telegram, Zalo and e-mail receivers (``--routes``)."""
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tick_s: float = 1.0
    self_metrics_s: float = 5.0
    checkpoint_s: float = 300.0


def _directory(registry: DeviceRegistry) -> Callable[[str], DeviceLocation | None]:
    def lookup(device: str) -> DeviceLocation | None:
        info = registry.get(device)
        return None if info is None else DeviceLocation(info.ward, info.route, info.position)

    return lookup


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the pipeline owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Pipeline:
    """``await Pipeline(config).run(stop)`` until ``stop`` is set."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.clock = DataClock()
        self.ready = asyncio.Event()
        self.api_url = f"http://{config.api_host}:{config.api_port}"
        self._queue: asyncio.Queue[list[Detection]] = asyncio.Queue()
        self.alert_changes = 0
        self._last_change = 0
        """The newest change id this process wrote."""
        self._alerting = False
        self.followers: list[FeedFollower] = []
        """The change feed's consumers: the InfluxDB export, then one per notifier."""
        self.ingest: IngestService | None = None
        self.sink: DetectorSink | None = None

    def idle(self) -> bool:
        """Nothing received is still on its way to the store (for tests and the demo)."""
        ingest = self.ingest
        return (
            ingest is not None
            and ingest.stats.acked >= ingest.stats.received
            and ingest.writer.pending_batches() == 0
            and self._queue.empty()
            and not self._alerting
            and all(f.caught_up(self._last_change) for f in self.followers)
        )

    @property
    def checkpoint(self) -> Path:
        return self.config.data_dir / "detector.npz"

    def _load_detector(self) -> Detector:
        if self.checkpoint.exists():
            try:
                detector = Detector.load(self.checkpoint, self.config.detector)
                log.info(
                    "detector restored from %s (%d series)",
                    self.checkpoint,
                    detector.registry.size,
                )
                return detector
            except (ValueError, OSError, KeyError) as exc:
                log.warning("ignoring unreadable detector checkpoint %s: %s", self.checkpoint, exc)
        return Detector(self.config.detector)

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()

        def emit(detections: list[Detection]) -> None:
            loop.call_soon_threadsafe(self._queue.put_nowait, detections)

        # The API's port first, before ingest can take a message: a taken port found later
        # would stop a process that had consumed (and acknowledged) messages.
        api_socket = bind_port(cfg.api_host, cfg.api_port)
        await asyncio.to_thread(kernel_ready.prepare)
        sink = DetectorSink(self._load_detector(), self.clock, emit)
        ingest = IngestService(
            load_settings(
                broker=cfg.broker,
                influx=cfg.influx,
                database=cfg.database,
                spool_dir=cfg.data_dir / "ingest",
                metrics_port=cfg.metrics_port,
            ),
            sinks=[sink],
            liveness_sinks=[sink],
        )
        sink.write = lambda lines: ingest.writer.submit(PendingBatch(lines=lines))
        self.ingest, self.sink = ingest, sink
        store = await AlertStore.open(
            cfg.store_url, directory=_directory(ingest.registry), clock=self.clock.now_ms
        )
        notifiers = await self._notifiers()
        receivers = self._receivers(store)
        influx = AsyncInfluxClient(cfg.influx, cfg.database)

        async def export(changes: list[AlertChange]) -> Handled:
            """Alert transitions — from detections, timers or people acting through the
            API — into InfluxDB for Grafana (a repeat writes identical points)."""
            try:
                await influx.write(alert_lines(changes))
            except InfluxError as exc:  # the store keeps them: retry from the cursor
                log.warning("alert changes not written to InfluxDB yet: %s", exc)
                return Handled(failed_at=changes[0].id)
            return Handled()

        # Poked after this process's own writes; the API's (acknowledgements, resolutions)
        # are seen at the next poll.
        self.followers = [
            FeedFollower(
                store, consumer_name("export", "influx", cfg.database), export, poll_s=0.5
            ),
            *(notify_follower(store, n, poll_s=0.5) for n in notifiers),
            *receivers,
        ]
        # The API's SSE streams wait on this feed; the pipeline pokes it after its own
        # writes, so crews hear of an alert at once rather than at the next poll.
        feed = ChangeFeed(store.last_change_id, poll_s=1.0)
        app = create_app(
            ApiSettings(
                store_url=cfg.store_url,
                influx_url=cfg.influx,
                influx_database=cfg.database,
                # The environment's, else one generated on first start and kept: never a
                # default anybody could read in the source and forge tickets with.
                ticket_secret=os.environ.get("CITYWATCH_TICKET_SECRET")
                or kept_secret(cfg.data_dir / "ticket_secret"),  # type: ignore[arg-type]
            ),
            store=store,
            feed=feed,
        )
        server = _EmbeddedServer(
            uvicorn.Config(app, host=cfg.api_host, port=cfg.api_port, log_level="warning")
        )

        async def publish(changes: list[AlertChange]) -> None:
            if not changes:
                return
            self.alert_changes += len(changes)
            self._last_change = max(self._last_change, changes[-1].id)
            feed.poke()
            # The followers read the store's feed at their own pace: a slow webhook never
            # holds back the next detections, nor the other notifiers.
            for follower in self.followers:
                follower.poke()

        async def alert_worker() -> None:
            """The pipeline's only writer of the store (detections and the lifecycle's
            timers), so its own writes never wait for each other's locks."""
            detections: list[Detection] = []
            next_tick = loop.time() + cfg.tick_s
            store_down = Backoff(base_s=0.5, cap_s=10.0)
            while True:
                if not detections:
                    try:
                        detections = await asyncio.wait_for(
                            self._queue.get(), max(0.0, next_tick - loop.time())
                        )
                    except TimeoutError:
                        detections = []
                if loop.time() >= next_tick:
                    try:
                        await publish(await store.tick())
                    except Exception:  # the store is down or busy: the next tick catches up
                        log.exception("alert timers failed; trying again next tick")
                    next_tick = loop.time() + cfg.tick_s
                if not detections:
                    continue
                self._alerting = True
                # Coalesce a burst, but keep each transaction short so the API's writes
                # (acknowledgements) get their turn at the store often.
                while not self._queue.empty() and len(detections) < _MAX_DETECTIONS_PER_WRITE:
                    detections += self._queue.get_nowait()
                try:
                    changes = await store.apply_detections(detections)
                except Exception:  # the store is down or busy: keep them, try again
                    log.exception(
                        "alert store write failed; retrying %d detections", len(detections)
                    )
                    await asyncio.sleep(store_down.next_delay())
                    continue
                store_down.reset()
                detections = []
                await publish(changes)
                self._alerting = not self._queue.empty()

        async def ticker() -> None:
            last_metrics = last_checkpoint = time.monotonic()
            while True:
                await asyncio.sleep(cfg.tick_s)
                try:
                    await asyncio.to_thread(sink.tick)
                    now = time.monotonic()
                    if now - last_metrics >= cfg.self_metrics_s:
                        sink.write(
                            sink.self_metric_lines(ingest.settings.instance, now - last_metrics)
                        )
                        last_metrics = now
                    if now - last_checkpoint >= cfg.checkpoint_s:
                        await asyncio.to_thread(sink.save, self.checkpoint)
                        last_checkpoint = now
                except Exception:  # one failed round must not stop the timers for good
                    log.exception("periodic work failed; trying again next tick")

        async def serve() -> None:
            await server.serve(sockets=[api_socket])
            if not server.started:  # uvicorn gave up (the port is taken): say where
                raise RuntimeError(f"the API could not start on {self.api_url}")
            if not stop.is_set():
                raise RuntimeError(f"the API on {self.api_url} stopped by itself")

        async def drain(
            following: list["asyncio.Task[None]"], serving: "asyncio.Task[None]"
        ) -> None:
            """Shut down in order: the API stops taking requests, ingest drains and
            acknowledges, the last detections reach the store, the followers send what
            they can (each resumes from its stored cursor at the next start), the API
            finishes its requests."""
            log.info("stopping: draining ingest, alerts and the detector")
            server.should_exit = True
            await asyncio.to_thread(ingest.stop)
            await asyncio.sleep(0)  # let the writer's last detections land in the queue
            while not self._queue.empty():
                await publish(await store.apply_detections(self._queue.get_nowait()))
            await asyncio.gather(
                *(f.drain(t, 15) for f, t in zip(self.followers, following, strict=True))
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(serving), timeout=15)

        for follower in self.followers:  # before this process writes its first change
            await follower.open()
        await asyncio.to_thread(ingest.start)
        drained = False
        try:
            async with asyncio.TaskGroup() as tasks:  # one failing task stops them all
                following = [tasks.create_task(f.run(), name=f.consumer) for f in self.followers]
                workers = [
                    tasks.create_task(alert_worker(), name="alerts"),
                    tasks.create_task(ticker(), name="ticker"),
                ]
                serving = tasks.create_task(serve(), name="api")
                while not server.started and not serving.done():
                    await asyncio.sleep(0.05)
                log.info(
                    "citywatch running: API %s, InfluxDB %s, broker %s",
                    self.api_url,
                    cfg.influx,
                    _redact_broker(cfg.broker),
                )
                self.ready.set()
                await stop.wait()
                await drain(following, serving)
                drained = True
                for task in (*workers, serving):
                    task.cancel()
        except BaseExceptionGroup as failed:  # a task failed: its own error, not a group
            log.error("stopped by a failure: %r", failed.exceptions[0])
            raise failed.exceptions[0] from failed
        finally:
            if not drained:  # a failure: at least nothing ingest took is left unacked
                await asyncio.to_thread(ingest.stop)
            await asyncio.to_thread(sink.save, self.checkpoint)
            for notifier in notifiers:
                with contextlib.suppress(Exception):
                    await notifier.close()
            for receiver in receivers:
                await receiver.close()
            await influx.aclose()
            await store.close()
            api_socket.close()
            log.info("stopped; detector state saved to %s", self.checkpoint)

    def _receivers(self, store: AlertStore) -> list[ReceiverFollower]:
        """The routing file's receivers (Telegram, Zalo, e-mail), each following the
        change feed; messages name wards as the ward table does."""
        if self.config.routes is None:
            return []
        routes = load_routes(self.config.routes)
        followers = receiver_followers(store, routes, ward_name=display_name, poll_s=0.5)
        log.info(
            "routing %s: receivers %s",
            self.config.routes,
            ", ".join(f"{f.receiver} ({f.channel})" for f in followers),
        )
        return followers

    async def _notifiers(self) -> list[MqttNotifier | WebhookNotifier]:
        cfg = self.config
        notifiers: list[MqttNotifier | WebhookNotifier] = []
        if cfg.notify_mqtt:
            host, port, _tls, user, password = parse_broker_url(cfg.broker)
            mqtt_notifier = MqttNotifier(
                host, port, client_id=cfg.notify_client_id, username=user, password=password
            )
            await mqtt_notifier.start()
            notifiers.append(mqtt_notifier)
        if cfg.webhook_url:
            if not cfg.webhook_secret:
                raise ValueError("a webhook needs a secret to sign its requests (--webhook-secret)")
            notifiers.append(WebhookNotifier(cfg.webhook_url, cfg.webhook_secret))
        return notifiers


class PortTakenError(RuntimeError):
    """A port the pipeline serves on is in use."""


def bind_port(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (uvicorn serves on it)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortTakenError(f"the API port {port} on {host} is taken ({exc.strerror})") from None
    sock.set_inheritable(True)
    return sock


def _redact_broker(url: str) -> str:
    host, port, tls, user, _password = parse_broker_url(url)
    return f"{'mqtts' if tls else 'mqtt'}://{user + '@' if user else ''}{host}:{port}"


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM set ``stop``. A second Ctrl-C interrupts at once (the caller
    exits, see ``citywatch.cmd_run.forced_exit``); a repeated SIGTERM does not, because
    supervisors repeat it as a matter of course (``timeout`` signals its child and then
    its whole process group) and the drain must not be cut short."""
    loop = asyncio.get_running_loop()

    def on_term() -> None:
        if stop.is_set():
            log.info("SIGTERM: already stopping")
            return
        log.info("SIGTERM: stopping")
        stop.set()

    def on_int() -> None:
        log.info("SIGINT: stopping (again to force)")
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)  # the next one raises KeyboardInterrupt

    loop.add_signal_handler(signal.SIGTERM, on_term)
    loop.add_signal_handler(signal.SIGINT, on_int)
