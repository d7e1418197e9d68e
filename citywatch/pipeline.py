"""The whole platform in one process: ingest → detector → alerts → API.

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
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import uvicorn

from alerts.correlation import DeviceLocation
from alerts.feed import FeedFollower, Handled, consumer_name
from alerts.influx import alert_lines
from alerts.model import AlertChange
from alerts.notify import MqttNotifier, WebhookNotifier, notify_follower
from alerts.store import AlertStore
from anomaly import (
    Detection,
    DetectionKind,
    Detector,
    DetectorConfig,
    Severity,
)
from anomaly.registry import SeriesRegistry
from api.app import create_app
from api.settings import ApiSettings
from citywatch import kernel_ready
from citywatch.kept_secret import kept_secret
from ingest import IngestService, load_settings
from ingest.batch import PendingBatch
from ingest.liveness import LivenessChange
from ingest.registry import DeviceRegistry
from ingest.source import parse_broker_url
from telemetry import METRICS_BY_ID, ReadingBatch
from telemetry.backoff import Backoff
from telemetry.influxdb import AsyncInfluxClient, InfluxError
from telemetry.lineproto import encode_point, series_key

log = logging.getLogger(__name__)


class DataClock:
    """Platform time follows the devices' clocks.

    The newest device timestamp seen, advanced by wall time since it was seen. With real
    devices this is wall time; in a time-compressed simulation (``--speed 60``) alert
    timings — pending periods, keep-firing, escalation, dropout — play at the
    simulation's pace instead of lagging an hour behind it. Never runs backwards.
    """

    def __init__(self, wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self._wall_ms = wall_ms
        self._lock = threading.Lock()
        self._device_ms: int | None = None
        self._seen_at_wall_ms = 0

    def observe(self, device_ms: int) -> None:
        """A device timestamp was accepted."""
        with self._lock:
            if self._device_ms is None or device_ms > self._now_locked():
                self._device_ms = device_ms
                self._seen_at_wall_ms = self._wall_ms()

    @property
    def known(self) -> bool:
        """Whether a device timestamp has been seen (before it, ``now_ms`` is wall time,
        which a simulation replaying yesterday is far from)."""
        with self._lock:
            return self._device_ms is not None

    def now_ms(self) -> int:
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> int:
        wall = self._wall_ms()
        if self._device_ms is None:
            return wall
        return self._device_ms + (wall - self._seen_at_wall_ms)


class DetectorSink:
    """The detector as an ingest sink: scores each durable batch, writes the scores worth
    charting to InfluxDB (``citywatch_score``), and hands detections to the alert layer.

    Also the liveness sink: a device going offline is a detection like any other.
    Thread-safe: ingest calls it from its sink thread, the pipeline's ticker from the
    event loop's executor.
    """

    def __init__(
        self,
        detector: Detector,
        clock: DataClock,
        emit: Callable[[list[Detection]], None],
        *,
        score_floor: float = 0.5,
    ) -> None:
        self.detector = detector
        self.clock = clock
        self.emit = emit
        self.score_floor = score_floor
        self.write: Callable[[list[str]], None] = lambda _lines: None
        self.readings = 0
        self.events = 0
        self._lock = threading.Lock()
        self._busy_s = 0.0
        self._rate_readings = 0
        self._registry: SeriesRegistry | None = None
        self._device_index: dict[str, int] = {}
        self._score_keys: dict[tuple[str, int, str], str] = {}

    def handle(self, batch: ReadingBatch) -> None:
        if len(batch) == 0:
            return
        started = time.perf_counter()
        with self._lock:
            update = self.detector.update_arrays(self._slots(batch), batch.ts_ms, batch.value)
            # Under the lock: a tick between the two would judge these series' silence
            # on a clock that has not seen their time yet.
            self.clock.observe(int(batch.ts_ms.max()))
        self._busy_s += time.perf_counter() - started
        self.readings += len(batch)
        self._rate_readings += len(batch)
        flagged = np.flatnonzero(update.scores >= self.score_floor)
        if flagged.size:
            self.write(self._score_lines(batch, flagged, update.scores))
        if update.events:
            self.events += len(update.events)
            self.emit(update.events)

    def _slots(self, batch: ReadingBatch) -> npt.NDArray[np.int64]:
        """The detector's series slots of a batch's rows; what ``Detector.update`` does.

        ``SeriesRegistry.slots`` hashes a (device, metric) key per reading. Ingest's batches
        come report by report, so one look-up per run of equal device ids (device index,
        cached here; the registry never renumbers devices) and a gather from the registry's
        device × metric table give the known slots; unknown series (and rows whose device
        is new) go through ``registry.slots`` in row order, registering exactly as it would.
        """
        registry = self.detector.registry
        if registry is not self._registry:  # a restored checkpoint brings its own
            self._registry, self._device_index = registry, {}
        devices, metric = batch.device, batch.metric
        n = len(devices)
        starts = np.flatnonzero(np.concatenate(([True], devices[1:] != devices[:-1])))
        get = self._device_index.get
        first = np.array([get(d, -1) for d in devices[starts].tolist()], dtype=np.int64)
        device = np.repeat(first, np.diff(np.append(starts, n)))
        table = registry.device_slots
        known = (device >= 0) & (metric >= 0) & (metric < table.shape[1])
        slots = np.full(n, -1, dtype=np.int64)
        slots[known] = table[device[known], metric[known]]
        missing = np.flatnonzero(slots < 0)
        if missing.size:
            found = registry.slots(devices[missing], metric[missing], batch.ward[missing])
            slots[missing] = found
            index = registry.device.take(found).tolist()
            self._device_index.update(zip(devices[missing].tolist(), index, strict=True))
        return slots

    def _score_lines(
        self, batch: ReadingBatch, rows: npt.NDArray[np.intp], scores: npt.NDArray[np.float64]
    ) -> list[str]:
        """``citywatch_score`` lines of the flagged rows, as ``encode_point`` writes them.

        The series key of a (device, metric, ward) is escaped once and cached; the fields
        are two floats (``repr``, like ``encode_point``).
        """
        keys = self._score_keys
        if len(keys) > 500_000:  # bounded: ids come from devices
            keys.clear()
        lines = []
        for device, ward, metric, ts, value, score in zip(
            batch.device[rows].tolist(),
            batch.ward[rows].tolist(),
            batch.metric[rows].tolist(),
            batch.ts_ms[rows].tolist(),
            batch.value[rows].tolist(),
            scores[rows].tolist(),
            strict=True,
        ):
            key = keys.get((device, metric, ward))
            if key is None:
                spec = METRICS_BY_ID[metric]
                tags = {"device": device, "kind": spec.kind.value, "metric": spec.name}
                key = keys[device, metric, ward] = series_key(
                    "citywatch_score", {**tags, "ward": ward}
                )
            lines.append(f"{key} score={round(score, 4)!r},value={value!r} {ts}")
        return lines

    @staticmethod
    def _score_line(batch: ReadingBatch, i: int, score: float) -> str:
        """One row's line the plain way (the reference ``_score_lines`` is tested against)."""
        metric = METRICS_BY_ID[int(batch.metric[i])]
        return encode_point(
            "citywatch_score",
            {
                "device": str(batch.device[i]),
                "kind": metric.kind.value,
                "metric": metric.name,
                "ward": str(batch.ward[i]),
            },
            {"score": round(score, 4), "value": float(batch.value[i])},
            int(batch.ts_ms[i]),
        )

    def handle_liveness(self, changes: Sequence[LivenessChange]) -> None:
        now = self.clock.now_ms()
        detections = [
            Detection(
                kind=DetectionKind.OFFLINE,
                severity=Severity.MAJOR,
                active=not c.online,
                ward=c.ward,
                device=c.device,
                start_ms=now,
                ts_ms=now,
                score=0.0 if c.online else 1.0,
                explanation=(
                    f"{c.kind.value.replace('_', ' ')} {c.device} is back online"
                    if c.online
                    else f"{c.kind.value.replace('_', ' ')} {c.device} went offline "
                    f"({_OFFLINE_REASONS.get(c.reason, c.reason)})"
                ),
            )
            for c in changes
            if not (c.online and c.previous is None)  # first sight of a device: nothing to clear
        ]
        if detections:
            self.emit(detections)

    def tick(self) -> None:
        """Look for series that fell silent (dropouts), on platform time; nothing is
        judged before the clock has seen a device's time."""
        if not self.clock.known:
            return
        with self._lock:
            events = self.detector.tick(self.clock.now_ms())
        if events:
            self.events += len(events)
            self.emit(events)

    def self_metric_lines(self, instance: str, interval_s: float) -> list[str]:
        rate = self._rate_readings / interval_s
        self._rate_readings = 0
        return [
            encode_point(
                "citywatch_detector",
                {"instance": instance},
                {
                    "readings": self.readings,
                    "events": self.events,
                    "series": self.detector.registry.size,
                    "readings_per_s": rate,
                    "bytes_per_series": self.detector.bytes_per_series(),
                },
                time.time_ns() // 1_000_000,
            )
        ]

    def save(self, path: Path) -> None:
        with self._lock:
            tmp = path.with_suffix(".tmp")
            self.detector.save(tmp)
            tmp.replace(path)


_MAX_DETECTIONS_PER_WRITE = 200

_OFFLINE_REASONS = {
    "lwt": "its connection dropped: last will",
    "status": "it said so",
    "timeout": "no report for three reporting periods",
}


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
        ]
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
        )
        server = _EmbeddedServer(
            uvicorn.Config(app, host=cfg.api_host, port=cfg.api_port, log_level="warning")
        )

        async def publish(changes: list[AlertChange]) -> None:
            if not changes:
                return
            self.alert_changes += len(changes)
            self._last_change = max(self._last_change, changes[-1].id)
            services = getattr(app.state, "services", None)
            if services is not None:
                services.feed.poke()  # SSE clients hear of it now, not at the next poll
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

        for follower in self.followers:  # before this process writes its first change
            await follower.open()
        await asyncio.to_thread(ingest.start)
        following = [asyncio.create_task(f.run(), name=f.consumer) for f in self.followers]
        tasks = [
            asyncio.create_task(alert_worker(), name="alerts"),
            asyncio.create_task(ticker(), name="ticker"),
        ]
        serving = asyncio.create_task(server.serve(), name="api")
        stopped = asyncio.create_task(stop.wait(), name="stop")
        try:
            while not server.started and not serving.done():
                await asyncio.sleep(0.05)
            if serving.done():
                serving.result()
                raise RuntimeError(f"the API could not start on {self.api_url}")
            log.info(
                "citywatch running: API %s, InfluxDB %s, broker %s",
                self.api_url,
                cfg.influx,
                _redact_broker(cfg.broker),
            )
            self.ready.set()
            await asyncio.wait({stopped, serving, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            for task in (serving, *tasks):
                if task.done() and task.exception() is not None:
                    log.error("%s stopped: %r", task.get_name(), task.exception())
                    raise task.exception()  # type: ignore[misc]
        finally:
            log.info("stopping: draining ingest, alerts and the detector")
            server.should_exit = True
            await asyncio.to_thread(ingest.stop)
            await asyncio.sleep(0)  # let the writer's last detections land in the queue
            while not self._queue.empty():
                await publish(await store.apply_detections(self._queue.get_nowait()))
            # The last exports and notifications go out (what cannot wait for a later
            # start: each follower resumes from its stored cursor).
            await asyncio.gather(
                *(f.drain(t, 15) for f, t in zip(self.followers, following, strict=True))
            )
            try:  # the API finishes its requests and its lifespan (store stays ours)
                await asyncio.wait_for(asyncio.shield(serving), timeout=15)
            except (TimeoutError, Exception):
                serving.cancel()
            stopped.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, stopped, serving, return_exceptions=True)
            await asyncio.to_thread(sink.save, self.checkpoint)
            for notifier in notifiers:
                with contextlib.suppress(Exception):
                    await notifier.close()
            await influx.aclose()
            await store.close()
            log.info("stopped; detector state saved to %s", self.checkpoint)

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
