"""A cluster worker: consumes every partition queue, owns the ones RabbitMQ makes it the
single active consumer of, and keeps per partition a detector checkpointed with the acks.

Per partition, a batch of messages goes through these steps, in this order, and only then
is acknowledged (one ``basic.ack`` with ``multiple``):

1. the checkpoint's version in the shared database is compared with the one this worker
   holds: single active consumer gives no "you are active now" signal, so a partition this
   worker held before (or never) is reloaded from the checkpoint first;
2. ingest's :class:`~ingest.receiver.Receiver` decodes and validates (the contract's
   decoder and bounds), builds the line-protocol points, and dead-letters bad input with
   its reason; dead letters are published with publisher confirms to ``amq.topic``;
3. the points are written to InfluxDB (idempotent: same series, same timestamp);
4. the readings go through the partition's detector, skipping those not newer than the
   series' last time in its state (a redelivery after a fail-over must not count twice),
   and the detections go to the shared alert store (its one-open-alert-per-key rule
   makes a repeated detection an update, never a second alert);
5. the detector's checkpoint is saved as the next version (fenced, see
   :mod:`citywatch.checkpoints`).

A worker killed anywhere in between leaves the batch unacknowledged: the broker
redelivers it to the worker that takes over, which loads the last checkpoint — the state
that includes exactly the batches that were acknowledged.

Time acts too (every ``tick_s``): on each partition it holds (it saved the current
checkpoint version), a worker looks for series fallen silent (the detector's dropouts)
and devices not heard for their liveness timeout, on the partition's own clock (platform
time that follows the partition's device timestamps, checkpointed with it), saves the
checkpoint when that raised something, and renews its lease on the partition; it also
lets the alert store's timers act (raise after pending, clear, escalate; the store
serialises concurrent ticks). A partition that gets no messages at all and whose
holder's lease ran out (its worker died) is claimed by another worker, so a city area
that falls silent as a whole is still raised offline after a fail-over.

Each tick the worker also says it is alive, and hands over a partition while it holds
more than its share of them (:mod:`citywatch.membership`, :meth:`Partition.release`): the
broker fails over, but does not give a returning worker anything back.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import numpy as np
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from alerts.correlation import DeviceLocation
from alerts.store import AlertStore
from anomaly import Detection, Detector, DetectorConfig
from anomaly.layout import LAST_TS
from citywatch import kernel_ready, partition_state, partitions, repartition
from citywatch.checkpoints import Checkpoint, CheckpointStore
from citywatch.detector_sink import DataClock, DetectorSink
from citywatch.membership import Membership, fair_share
from citywatch.partition_state import SnapshotPolicy, TrackedDevices
from ingest.batch import PendingBatch
from ingest.device_status import liveness_lines
from ingest.liveness import LivenessChange, LivenessTracker
from ingest.receiver import Receiver
from ingest.stats import IngestStats
from telemetry import DeviceKind, ReadingBatch, Status
from telemetry.backoff import Backoff
from telemetry.influxdb import AsyncInfluxClient, InfluxError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    engine: str
    """``amqp://USER:PASS@HOST:PORT/VHOST``"""
    influx: str
    store_url: str
    database: str = "citywatch"
    partitions: int = partitions.DEFAULT_PARTITIONS
    data_dir: Path = Path("var/citywatch-worker")
    metrics_port: int | None = None
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    prefetch: int = 2000
    """Unacknowledged messages per partition: the backpressure window."""
    batch_messages: int = 2000
    linger_s: float = 0.2
    """How long a partition gathers messages before it processes them."""
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    tick_s: float = 1.0
    """How often time acts: dropouts, liveness timeouts, alert timers, leases."""
    lease_s: float = 15.0
    """A partition whose holder has not renewed its lease for this long is claimed."""
    snapshot_share: float = 1.0
    """A save is a full checkpoint when the deltas since the last one would exceed this
    share of its size (:class:`citywatch.partition_state.SnapshotPolicy`)."""


class WorkerMetrics:
    """The worker's own counters, served on ``--metrics-port`` (Prometheus)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter("citywatch_worker_messages", "Messages acked", registry=r)
        self.readings = Counter(
            "citywatch_worker_readings", "Readings scored by the detector", registry=r
        )
        self.skipped = Counter(
            "citywatch_worker_readings_redelivered",
            "Readings skipped as not newer than their series' state (redeliveries)",
            registry=r,
        )
        self.deadlettered = Counter(
            "citywatch_worker_deadlettered", "Messages dead-lettered", registry=r
        )
        self.detections = Counter("citywatch_worker_detections", "Detections", registry=r)
        self.takeovers = Counter(
            "citywatch_worker_takeovers", "Partitions (re)loaded from a checkpoint", registry=r
        )
        self.fenced = Counter(
            "citywatch_worker_fenced", "Checkpoint saves refused by the version fence", registry=r
        )
        self.claimed = Counter(
            "citywatch_worker_claimed",
            "Silent partitions claimed after their holder's lease ran out",
            registry=r,
        )
        self.released = Counter(
            "citywatch_worker_released",
            "Partitions handed to another worker to balance the load",
            registry=r,
        )
        self.unknown_ward = Counter(
            "citywatch_worker_unknown_ward_reports",
            "Reports of devices in a ward outside the ward catalogue (partition 0's)",
            registry=r,
        )
        self.owned = Gauge(
            "citywatch_worker_partitions_owned",
            "Partitions whose last batch this worker processed",
            registry=r,
        )


class ArrivalLiveness(LivenessTracker):
    """Liveness on a partition's clock, which each report advances to its own time as it
    is received: a backlog redelivered after a fail-over stamps every device with when it
    reported, not with when the backlog was read (which would judge them all silent for
    as long as the backlog spans)."""

    def __init__(self, clock: DataClock) -> None:
        super().__init__(clock=lambda: clock.now_ms() / 1000.0)
        self.data_clock = clock
        self.changed: set[str] = set()
        """The devices whose liveness changed since the last save (a delta's)."""

    def on_report(
        self, device: str, kind: DeviceKind, ward: str, ts_ms: int
    ) -> LivenessChange | None:
        self.data_clock.observe(ts_ms)
        self.changed.add(device)
        return super().on_report(device, kind, ward, ts_ms)

    def on_status(self, status: Status, ward: str) -> LivenessChange | None:
        self.changed.add(status.device)
        return super().on_status(status, ward)

    def check(self) -> list[LivenessChange]:
        changes = super().check()
        self.changed.update(c.device for c in changes)
        return changes


class Partition:
    """One partition's detector, liveness, receiver and buffer of unacknowledged
    messages."""

    def __init__(self, worker: "Worker", number: int) -> None:
        self.worker = worker
        self.number = number
        self.queue = partitions.queue_name(number)
        self.version = -1
        """The checkpoint version the detector holds; -1: none loaded yet."""
        self.holds = False
        """This worker saved ``version`` (and has not lost it since): it ticks the
        partition and renews its lease."""
        self.lock = asyncio.Lock()
        """One batch or tick at a time."""
        self.detector = Detector(worker.config.detector)
        self.registry = TrackedDevices()
        self.policy = SnapshotPolicy(worker.config.snapshot_share)
        self.clock = DataClock()
        """Platform time of this partition's devices (each partition's own: a backlog of
        one partition must not make another's devices look silent)."""
        self.liveness = ArrivalLiveness(self.clock)
        self._detections: list[Detection] = []
        self._lines: list[str] = []
        self.sink = DetectorSink(self.detector, self.clock, self._detections.extend)
        self.sink.write = self._lines.extend
        self._batches: list[PendingBatch] = []
        self._deadletters: list[tuple[str, bytes]] = []
        self._liveness: list[LivenessChange] = []
        self.stats = IngestStats()
        self.receiver = self._receiver()
        self.buffer: list[AbstractIncomingMessage] = []
        self.arrived = asyncio.Event()
        self.channel: AbstractChannel | None = None
        self.last_batch_s = 0.0

    def _receiver(self) -> Receiver:
        def publish_deadletter(topic: str, payload: bytes) -> Callable[[float], bool]:
            self._deadletters.append((topic, payload))
            return lambda _timeout: True  # published (with confirms) before the ack

        return Receiver(
            emit=self._batches.append,
            publish_deadletter=publish_deadletter,
            registry=self.registry,
            liveness=self.liveness,
            on_liveness=self._liveness.append,
            stats=self.stats,
            batch_lines=1 << 30,
            keep_reports=True,
        )

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        self.buffer.append(message)
        self.arrived.set()

    async def run(self) -> None:
        cfg = self.worker.config
        while True:
            await self.arrived.wait()
            await asyncio.sleep(cfg.linger_s)
            # The batch is taken under the lock: a release in between empties the buffer
            # (its messages went back to the queue with the channel).
            async with self.lock:
                batch, self.buffer = (
                    self.buffer[: cfg.batch_messages],
                    self.buffer[cfg.batch_messages :],
                )
                if not self.buffer:
                    self.arrived.clear()
                if batch:
                    await self.process(batch)

    async def subscribe(self, connection: AbstractConnection) -> None:
        """Consume the partition's queue on a channel of its own (the broker makes this
        worker its active consumer, or puts it in line)."""
        cfg = self.worker.config
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=cfg.prefetch)
        queue = await channel.get_queue(self.queue, ensure=False)
        self.channel = channel
        self.buffer.clear()
        self.arrived.clear()
        self.version = -1  # whatever this worker held may be stale after a reconnect
        self.holds = False
        await queue.consume(self.on_message, consumer_tag=f"{cfg.worker_id}.p{self.number:03d}")

    async def release(self, connection: AbstractConnection) -> None:
        """Hand the partition to the next worker in line, and queue up behind it.

        Between two batches (under the lock: the last one is saved and acknowledged), the
        partition's channel is closed: the broker returns the messages delivered but not
        processed to the queue *in order* and makes the next waiting consumer active.
        (A ``basic.cancel`` would not: the next consumer becomes active at once and gets
        the newer messages before the ones this worker still holds are returned, and a
        reading older than its series' last one is not scored.) The taker loads the
        checkpoint saved with the last acknowledgement; this worker subscribes again at
        the back of the line."""
        async with self.lock:
            if self.channel is not None:
                with contextlib.suppress(Exception):
                    await self.channel.close()
            await self.subscribe(connection)

    async def _current(self) -> None:
        """Reload from the checkpoint if another worker saved since (or never loaded)."""
        store = self.worker.checkpoints
        saved = await store.version(self.number)
        if saved == self.version:
            return
        started = time.monotonic()
        self.holds = False
        checkpoint = await store.load(self.number)
        cfg = self.worker.config
        self.clock = DataClock()
        self.liveness = ArrivalLiveness(self.clock)
        self.sink = DetectorSink(Detector(cfg.detector), self.clock, self._detections.extend)
        self.sink.write = self._lines.extend
        if checkpoint is None:
            self.detector = self.sink.detector
            self.registry = TrackedDevices()
            self.version = 0
        else:
            if checkpoint.partitions != cfg.partitions:
                raise partitions.PartitionMismatchError(
                    f"partition {self.number}'s checkpoint was made with "
                    f"{checkpoint.partitions} partitions, this worker runs {cfg.partitions}"
                )
            self.detector = await asyncio.to_thread(
                partition_state.detector_of, checkpoint, cfg.detector
            )
            self.sink.detector = self.detector
            self.registry = partition_state.devices_of(checkpoint)
            self._resume_liveness(checkpoint)
            self.version = checkpoint.version
        self.policy.follow(checkpoint)
        self.receiver = self._receiver()  # its duplicate window belongs to the old state
        self.worker.metrics.takeovers.inc()
        log.info(
            "partition %d: active here, checkpoint v%d loaded (full v%d + %d deltas, "
            "%d series) in %.3f s",
            self.number,
            self.version,
            0 if checkpoint is None else checkpoint.base_version,
            self.policy.deltas,
            self.detector.registry.size,
            time.monotonic() - started,
        )

    def _resume_liveness(self, checkpoint: Checkpoint) -> None:
        """The checkpoint's clock and liveness (absent in an older worker's checkpoint:
        then the devices are learned afresh from their next report)."""
        if checkpoint.clock_ms is not None:
            self.clock.resume(checkpoint.clock_ms, checkpoint.saved_ms)
        try:
            partition_state.liveness_into(checkpoint, self.liveness, self.sink.area_silence)
        except ValueError as exc:
            log.warning("partition %d: liveness not restored: %s", self.number, exc)

    async def _save(self) -> bool:
        """The checkpoint as the next version (fenced): a delta, or a full checkpoint
        when the policy says; False if another worker saved since (then this one no
        longer holds the partition)."""
        worker = self.worker
        reading = self.clock.reading()
        clock_ms, at_ms = reading if reading is not None else (None, None)
        area = self.sink.area_silence
        delta = None
        if self.version > 0 and self.policy.full_bytes:
            delta = await asyncio.to_thread(
                partition_state.delta,
                self.version + 1,
                self.detector,
                self.registry,
                self.liveness,
                area,
                self.liveness.changed,
            )
            if self.policy.wants_full(partition_state.delta_size(delta)):
                delta = None
        if delta is None:
            full = await asyncio.to_thread(
                partition_state.full, self.detector, self.registry, self.liveness, area
            )
            saved = await worker.checkpoints.save(
                self.number,
                worker.config.partitions,
                self.version,
                full.state,
                full.devices,
                worker.config.worker_id,
                liveness=full.liveness,
                clock_ms=clock_ms,
                now_ms=at_ms,
            )
        else:
            saved = await worker.checkpoints.save_delta(
                self.number,
                self.version,
                delta,
                worker.config.worker_id,
                clock_ms=clock_ms,
                now_ms=at_ms,
            )
        if saved:
            self.version += 1
            self.holds = True
            self.detector.checkpoint_saved()
            self.registry.changed.clear()
            self.liveness.changed.clear()
            if delta is None:
                self.policy.saved_full(full.size)
            else:
                self.policy.saved_delta(partition_state.delta_size(delta))
        else:
            worker.metrics.fenced.inc()
            self.version = -1
            self.holds = False
        return saved

    def _liveness_changes(self, changes: list[LivenessChange]) -> None:
        """Into the detector sink (offline alerts, area silences) and InfluxDB."""
        if changes:
            self.sink.handle_liveness(changes)
            self._lines += liveness_lines(changes, self.registry.get)

    async def _deliver(self) -> None:
        """The partition's score points and detections, to InfluxDB and the store."""
        worker = self.worker
        reading = self.clock.reading()
        if reading is not None:
            worker.clock.observe(reading[0])
        await worker.write(self._lines)
        self._lines.clear()
        if self._detections:
            await worker.apply(self._detections)
            worker.metrics.detections.inc(len(self._detections))
            self._detections.clear()

    async def tick(self) -> None:
        """Let time act on a partition this worker holds: series silent past their
        dropout limit, devices past their liveness timeout; saved when it raised any."""
        if not self.holds or not self.clock.known:
            return
        now_ms = self.clock.now_ms()
        events = self.detector.tick(now_ms)
        self._detections += events
        changes = self.liveness.check()
        self._liveness_changes(changes)
        if not events and not changes:
            return
        await self._deliver()
        if not await self._save():
            log.warning("partition %d: checkpoint fence moved during a tick", self.number)

    async def claim(self) -> None:
        """Take over a partition whose holder's lease ran out (no messages come to make
        this worker load it): load its checkpoint and save it as this worker's."""
        if self.holds:
            return
        await self._current()
        if await self._save():
            self.worker.metrics.claimed.inc()
            log.info("partition %d: claimed (its holder's lease ran out)", self.number)

    async def process(self, messages: list[AbstractIncomingMessage]) -> None:
        worker = self.worker
        await self._current()
        for i, message in enumerate(messages):
            topic = partitions.topic_of(repartition.routing_key(message))
            self.receiver.receive(topic, message.body, (0, i))
        self.receiver.flush()
        # The receiver appends to these very lists: take copies, then empty them.
        batches, deadletters, liveness = (
            list(self._batches),
            list(self._deadletters),
            list(self._liveness),
        )
        for taken in (self._batches, self._deadletters, self._liveness):
            taken.clear()
        for topic, payload in deadletters:
            await worker.publish(topic, payload)
        lines = [line for b in batches for line in b.lines]
        await worker.write(lines)
        reports = [r for b in batches for r in b.reports]
        wards = [w for b in batches for w in b.wards]
        worker.note_unknown_wards(wards)
        if reports:
            fresh = self._fresh(ReadingBatch.from_reports(reports, wards))
            self.sink.handle(fresh)
        self._liveness_changes(liveness)
        await self._deliver()
        if not await self._save():
            # Another worker took this partition over and saved: its state is newer. Not
            # acknowledged here: the broker gives the messages to the active consumer.
            log.warning("partition %d: checkpoint fence moved; reloading", self.number)
            with contextlib.suppress(Exception):
                await messages[-1].nack(multiple=True, requeue=True)
            return
        await messages[-1].ack(multiple=True)
        worker.metrics.messages.inc(len(messages))
        worker.metrics.deadlettered.inc(len(deadletters))
        self.last_batch_s = time.monotonic()

    def _fresh(self, batch: ReadingBatch) -> ReadingBatch:
        """The readings newer than their series' last time in the detector (and each
        (series, time) once): what a redelivery repeats is not counted twice."""
        det = self.detector
        slots = det.registry.slots(batch.device, batch.metric, batch.ward)
        det.state.grow(det.registry.capacity)
        last = det.state.f64[slots, LAST_TS]
        keep = ~(batch.ts_ms <= last)  # NaN (a new series) keeps
        order = np.lexsort((batch.ts_ms, slots))
        same = np.zeros(len(slots), bool)
        same[order[1:]] = (slots[order[1:]] == slots[order[:-1]]) & (
            batch.ts_ms[order[1:]] == batch.ts_ms[order[:-1]]
        )
        keep &= ~same
        skipped = int(len(keep) - keep.sum())
        self.worker.metrics.skipped.inc(skipped)
        self.worker.metrics.readings.inc(int(keep.sum()))
        if not skipped:
            return batch
        return ReadingBatch(
            batch.device[keep],
            batch.ward[keep],
            batch.metric[keep],
            batch.ts_ms[keep],
            batch.value[keep],
        )


class Worker:
    """``await Worker(config).run(stop)`` until ``stop`` is set."""

    def __init__(self, config: WorkerConfig) -> None:
        partitions.check_partitions(config.partitions)
        self.config = config
        self.clock = DataClock()
        self.metrics = WorkerMetrics()
        self.checkpoints: CheckpointStore
        self.membership: Membership
        self._connection: AbstractConnection | None = None
        self.store: AlertStore
        self.influx: AsyncInfluxClient
        self.partitions = [Partition(self, p) for p in range(config.partitions)]
        self._publish_channel: AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self.ready = asyncio.Event()
        self.catalogue = partitions.catalogue()
        self.unknown_wards: set[str] = set()
        """Wards outside the catalogue this worker has received reports of."""

    def note_unknown_wards(self, wards: list[str]) -> None:
        """Count the reports of wards outside the catalogue (the broker routes them to
        partition 0; they are stored and scored like any other); say so once per ward."""
        unknown = set(wards) - self.catalogue
        if not unknown:
            return
        self.metrics.unknown_ward.inc(sum(1 for w in wards if w in unknown))
        for ward in sorted(unknown - self.unknown_wards):
            log.warning(
                "reports of ward %r, outside the ward catalogue: stored and scored on partition %d",
                ward,
                partitions.UNKNOWN_WARD_PARTITION,
            )
        self.unknown_wards |= unknown

    def _lookup(self, device: str) -> DeviceLocation | None:
        for part in self.partitions:
            info = part.registry.get(device)
            if info is not None:
                return DeviceLocation(info.ward, info.route, info.position)
        return None

    async def publish(self, topic: str, payload: bytes) -> None:
        """A dead letter, confirmed by the broker (persistent, to ``amq.topic``)."""
        assert self._exchange is not None
        await self._exchange.publish(
            aio_pika.Message(payload, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=partitions.routing_key_of(topic),
        )

    async def write(self, lines: list[str]) -> None:
        """Write to InfluxDB, retrying until it takes them (the messages wait unacked)."""
        if not lines:
            return
        body = "\n".join(lines)
        backoff = Backoff(base_s=0.5, cap_s=10.0)
        while True:
            try:
                await self.influx.write(body, precision="ms")
                return
            except InfluxError as exc:
                delay = backoff.next_delay()
                log.warning("InfluxDB write failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def apply(self, detections: list[Detection]) -> None:
        backoff = Backoff(base_s=0.5, cap_s=10.0)
        while True:
            try:
                await self.store.apply_detections(detections)
                return
            except Exception:  # the store is down or busy: the messages wait unacked
                delay = backoff.next_delay()
                log.exception("alert store write failed; retrying in %.1f s", delay)
                await asyncio.sleep(delay)

    async def _consume(self, connection: AbstractConnection) -> None:
        cfg = self.config
        await partitions.declare(connection, cfg.partitions, sorted(self.catalogue))
        self._publish_channel = await connection.channel(publisher_confirms=True)
        self._exchange = await self._publish_channel.get_exchange(partitions.EXCHANGE)
        for part in self.partitions:
            await part.subscribe(connection)
        self._connection = connection
        log.info(
            "worker %s consuming %d partition queues on %s",
            cfg.worker_id,
            cfg.partitions,
            _redact(cfg.engine),
        )

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        if cfg.metrics_port:
            start_http_server(cfg.metrics_port, "127.0.0.1", registry=self.metrics.registry)
        await asyncio.to_thread(kernel_ready.prepare)
        self.checkpoints = await CheckpointStore.open(cfg.store_url)
        self.membership = await Membership.open(
            self.checkpoints.engine, lease_ms=round(cfg.lease_s * 1000)
        )
        self.store = await AlertStore.open(
            cfg.store_url, directory=self._lookup, clock=self.clock.now_ms
        )
        self.influx = AsyncInfluxClient(cfg.influx, cfg.database)
        backoff = Backoff(base_s=0.5, cap_s=10.0)
        try:
            while not stop.is_set():
                connection = await partitions.connect(cfg.engine)
                try:
                    await self._consume(connection)
                    backoff.reset()
                    self.ready.set()
                    await self._serve(connection, stop)
                except (aio_pika.exceptions.AMQPError, ConnectionError, OSError) as exc:
                    delay = backoff.next_delay()
                    log.warning("broker connection lost (%s); reconnecting in %.1f s", exc, delay)
                    await asyncio.sleep(delay)
                finally:
                    with contextlib.suppress(Exception):
                        await connection.close()
        finally:
            with contextlib.suppress(Exception):  # else the others wait out the lease
                await self.membership.leave(cfg.worker_id)
            await self.influx.aclose()
            await self.store.close()
            await self.checkpoints.close()

    async def _serve(self, connection: AbstractConnection, stop: asyncio.Event) -> None:
        """Process partitions until ``stop`` (then finish the batches in hand) or until
        the connection closes (raises)."""
        closed = asyncio.Event()
        connection.close_callbacks.add(lambda *_: closed.set())
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(p.run(), name=f"p{p.number}") for p in self.partitions
        ]
        watch = asyncio.create_task(self._watch_owned())
        tasks.append(asyncio.create_task(self._ticker(), name="ticker"))
        try:
            waits: list[asyncio.Task[Any]] = [
                asyncio.create_task(stop.wait()),
                asyncio.create_task(closed.wait()),
            ]
            done, _ = await asyncio.wait([*waits, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
            for task in tasks:
                if task in done:
                    task.result()  # a partition failed: its own error
            if waits[1] in done:
                raise ConnectionError("the broker closed the connection")
        finally:
            watch.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, watch, return_exceptions=True)

    async def _ticker(self) -> None:
        """Every ``tick_s``: renew the leases of the partitions held (dropping those
        another worker saved since), claim silent ones whose lease ran out, let time act
        on each held partition, then on the alert store's timers."""
        cfg = self.config
        while True:
            await asyncio.sleep(cfg.tick_s)
            try:
                await self._tick_once()
            except partitions.PartitionMismatchError:
                raise
            except Exception:  # the store is down or busy: the next tick catches up
                log.exception("periodic work failed; trying again next tick")

    async def _tick_once(self) -> None:
        cfg = self.config
        held = {p.number: p.version for p in self.partitions if p.holds}
        kept = await self.checkpoints.renew(held, cfg.worker_id)
        for number in held.keys() - kept:
            part = self.partitions[number]
            if part.lock.locked() or part.version != held[number]:
                continue  # a batch in hand, or saved since: its own save finds out
            part.holds = False
            log.info("partition %d: another worker holds it now", number)
        now_ms = time.time_ns() // 1_000_000
        holding = sum(1 for p in self.partitions if p.holds)
        share = fair_share(
            cfg.partitions, await self.membership.beat(cfg.worker_id, holding, now_ms)
        )
        for lease in await self.checkpoints.leases():
            if lease.partition >= cfg.partitions:
                continue
            silent = self.partitions[lease.partition]
            if silent.holds or silent.lock.locked():
                continue
            # Only a worker below its share claims: a partition it has just handed over
            # is not claimed back when its lease runs out.
            if now_ms - lease.lease_ms > cfg.lease_s * 1000 and holding < share:
                async with silent.lock:
                    await silent.claim()
                holding += silent.holds
        if holding > share:
            await self._hand_over(share)
        for part in self.partitions:
            if part.holds and not part.lock.locked():
                async with part.lock:
                    await part.tick()
        if self.clock.known:
            await self.store.tick()

    async def _hand_over(self, share: int) -> None:
        """Release one partition above this worker's share (the highest-numbered held
        one not busy): one a tick, so the others have counted the workers anew before
        the next moves."""
        if self._connection is None:
            return
        held = [p for p in self.partitions if p.holds]
        idle = [p for p in held if not p.lock.locked()]
        if not idle:
            return
        part = idle[-1]
        await part.release(self._connection)
        self.metrics.released.inc()
        log.info(
            "partition %d: handed over to balance the load (%d held, a share is %d)",
            part.number,
            len(held),
            share,
        )

    async def _watch_owned(self) -> None:
        while True:
            now = time.monotonic()
            self.metrics.owned.set(sum(1 for p in self.partitions if now - p.last_batch_s < 30))
            await asyncio.sleep(5)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 5672}{parts.path}"
