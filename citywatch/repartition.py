"""Change the number of partitions of a running city: ``citywatch partitions resize``.

The partition of a ward is ``crc32(ward) mod N``: another N moves most wards to another
queue, and their learned state to another checkpoint. Done while devices go on
publishing, with every worker stopped (refused otherwise: a worker keeps its N), in this
order, holding the durable queue ``cw.resize.lock`` meanwhile (workers and ``partitions
apply`` refuse to start while it exists):

0. the routing is brought to the current layout (:func:`citywatch.partitions.declare`
   with the old N: a cluster whose queues are bound to ``amq.topic`` directly moves to
   ``cw.city`` first);
1. every ward's binding on ``cw.city`` moves from its old queue to a *staging* queue of
   its new partition (``cw.resize.stage.NNN``; bound before unbound, so no report finds
   no queue), and so does the unknown wards' route (``cw.unknown-wards`` → partition 0's
   staging queue): the old queues receive nothing more;
2. every old queue's backlog moves, in order, to a *backlog* queue of each message's new
   partition (``cw.resize.backlog.NNN``; a ward outside the catalogue stays in partition
   0), then the old queues are deleted;
3. per new partition: its queue is declared, the backlog moved into it, then the staging
   queue's messages; the ward bindings (and on partition 0 the unknown wards' route) move
   from staging to the partition queue, and what reached staging in between follows;
4. the checkpoints are regrouped by ward (:func:`anomaly.regroup.regroup`, the liveness
   and the device registry likewise) into the new partitions, with a version above every
   old one, in one transaction: a ward outside the catalogue into partition 0, where its
   messages go;
5. the lock is removed: workers start with the new ``--partitions``.

A moved message keeps its MQTT topic in the header ``x-cw-routing-key`` (published
through the default exchange, its routing key is the queue's name). Per ward the order
of reports is kept, except for what devices publish during step 3's last switch (a
moment): such a report may reach its worker after a newer one of its device. It is
stored all the same (InfluxDB), but the detector, taking only readings newer than its
series' last, leaves it unscored.

Nothing is deleted before it has been moved: a resize that stops half-way (the
process killed, the broker gone) leaves the lock and the ``cw.resize.*`` queues holding
the messages, and says so when run again.
"""

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import aio_pika
import msgspec
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from anomaly.regroup import regroup
from citywatch import liveness_state, partition_state, partitions
from citywatch.checkpoints import CheckpointStore, checkpoints
from citywatch.checkpoints import deltas as checkpoint_deltas
from telemetry import DeviceInfo

log = logging.getLogger(__name__)

LOCK_QUEUE = partitions.RESIZE_LOCK
STAGE_PREFIX = "cw.resize.stage."
BACKLOG_PREFIX = "cw.resize.backlog."
ROUTING_HEADER = "x-cw-routing-key"
_IDLE_S = 0.5


class ResizeRefusedError(RuntimeError):
    """The resize cannot start (or go on) safely; the message says why and what to do."""


@dataclass(frozen=True)
class ResizeReport:
    old: int
    new: int
    wards_moved: int
    messages_moved: int
    """Queued messages that reached the new partition queues."""
    series: int
    checkpoints: int


def routing_key(message: AbstractIncomingMessage) -> str:
    """The routing key the device's topic made, also for a message a resize moved."""
    moved = (message.headers or {}).get(ROUTING_HEADER)
    return str(moved) if moved else message.routing_key or ""


def _only(queue: str) -> Callable[[str], str]:
    return lambda _key: queue


def _stage(partition: int) -> str:
    return f"{STAGE_PREFIX}{partition:03d}"


def _backlog(partition: int) -> str:
    return f"{BACKLOG_PREFIX}{partition:03d}"


async def lock_held(connection: AbstractConnection) -> bool:
    return await partitions.queue_counts(connection, LOCK_QUEUE) is not None


class _Mover:
    """Moves messages between queues in order: consume, publish with a confirm, ack."""

    def __init__(self, connection: AbstractConnection) -> None:
        self.connection = connection
        self.moved = 0

    async def move(self, source: str, target_of: Callable[[str], str]) -> int:
        """Every message of ``source`` until it stays empty for a moment, each to the
        queue ``target_of(its routing key)``."""
        inbound = await self.connection.channel()
        outbound = await self.connection.channel(publisher_confirms=True)
        await inbound.set_qos(prefetch_count=500)
        queue = await inbound.get_queue(source, ensure=False)
        moved = 0
        try:
            async with queue.iterator() as messages:
                while True:
                    try:
                        message = await asyncio.wait_for(anext(messages), _IDLE_S)
                    except TimeoutError:
                        if (await partitions.queue_counts(self.connection, source) or (0, 0))[
                            0
                        ] == 0:
                            break
                        continue
                    key = routing_key(message)
                    await outbound.default_exchange.publish(
                        aio_pika.Message(
                            message.body,
                            headers={**(message.headers or {}), ROUTING_HEADER: key},
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=target_of(key),
                    )
                    await message.ack()
                    moved += 1
        finally:
            await inbound.close()
            await outbound.close()
        self.moved += moved
        return moved


async def _delete_empty(
    connection: AbstractConnection, channel: AbstractChannel, name: str
) -> None:
    """Delete a queue that nothing is bound to any more, once it is empty (quorum queues
    refuse ``if-empty``: checked here)."""
    counts = await partitions.queue_counts(connection, name)
    if counts is not None and counts[0]:
        raise ResizeRefusedError(f"{name} still holds {counts[0]} messages; not deleted")
    await channel.queue_delete(name)


async def _declare_transit(channel: AbstractChannel, name: str) -> None:
    # Quorum (replicated like the partitions) but without single active consumer: the
    # mover is their only reader.
    await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})


async def _refuse_unless_quiet(connection: AbstractConnection, old: int) -> None:
    if await lock_held(connection):
        raise ResizeRefusedError(
            f"the queue {LOCK_QUEUE} exists: another resize is running, or one stopped "
            f"half-way (its messages wait in the {STAGE_PREFIX}* and {BACKLOG_PREFIX}* "
            "queues; move them to their partition queues before deleting the lock)"
        )
    consuming = []
    for p in range(old):
        counts = await partitions.queue_counts(connection, partitions.queue_name(p))
        if counts and counts[1]:
            consuming.append(f"{partitions.queue_name(p)} ({counts[1]})")
    if consuming:
        raise ResizeRefusedError(
            f"workers still consume {len(consuming)} of the {old} partition queues "
            f"({', '.join(consuming[:3])}{'…' if len(consuming) > 3 else ''}): stop every "
            f"worker (they run --partitions {old}) before changing the partitions; devices "
            "may go on publishing, their reports wait in the queues"
        )


async def resize(
    connection: AbstractConnection,
    store_url: str,
    new: int,
    wards: Sequence[str],
    say: Callable[[str], None] = log.info,
) -> ResizeReport:
    """Re-partition from the partitions that exist to ``new`` (see the module's text)."""
    partitions.check_partitions(new)
    old = await partitions.existing_partitions(connection)
    if old == 0:
        raise ResizeRefusedError("no partition queues yet: citywatch partitions apply")
    if old == new:
        raise ResizeRefusedError(f"the broker holds {old} partitions already")
    await _refuse_unless_quiet(connection, old)
    await _refuse_unless_checkpoints_of(store_url, old)
    # 0. The current routing (moves a cluster of the old layout to cw.city).
    await partitions.declare(connection, old, wards)
    catalogue = frozenset(wards)
    before = partitions.partition_map(wards, old)
    after = partitions.partition_map(wards, new)
    new_of = {w: p for p, members in after.items() for w in members}
    old_of = {w: p for p, members in before.items() for w in members}
    unknown_p = partitions.UNKNOWN_WARD_PARTITION
    channel = await connection.channel()
    await channel.declare_queue(LOCK_QUEUE, durable=True)
    exchange = await channel.get_exchange(partitions.CITY_EXCHANGE, ensure=True)
    unknown = await channel.get_exchange(partitions.UNKNOWN_WARDS_EXCHANGE, ensure=True)
    mover = _Mover(connection)

    def to(prefix: Callable[[int], str]) -> Callable[[str], str]:
        return lambda key: prefix(partitions.partition_of_key(key, new, catalogue))

    # 1. New reports to staging, per new partition.
    for p in range(new):
        await _declare_transit(channel, _stage(p))
        await _declare_transit(channel, _backlog(p))
    for ward in sorted(new_of):
        stage = await channel.get_queue(_stage(new_of[ward]), ensure=False)
        await stage.bind(exchange, partitions.ward_binding(ward))
        old_queue = await channel.get_queue(partitions.queue_name(old_of[ward]), ensure=False)
        await old_queue.unbind(exchange, partitions.ward_binding(ward))
    stage = await channel.get_queue(_stage(unknown_p), ensure=False)
    await stage.bind(unknown, "")
    old_queue = await channel.get_queue(partitions.queue_name(unknown_p), ensure=False)
    await old_queue.unbind(unknown, "")
    say(f"{len(new_of)} wards (and those outside the catalogue) publishing into staging queues")
    # 2. The old queues' backlog, in order, to the backlog of each message's partition.
    for p in range(old):
        name = partitions.queue_name(p)
        moved = await mover.move(name, to(_backlog))
        await _delete_empty(connection, channel, name)
        say(f"{name}: {moved} messages moved, queue deleted")
    # 3. The new partition queues: backlog first, then staging, then the bindings.
    delivered = 0
    for p in range(new):
        name = partitions.queue_name(p)
        await channel.declare_queue(name, durable=True, arguments=partitions.QUEUE_ARGUMENTS)
        queue = await channel.get_queue(name, ensure=False)
        stage = await channel.get_queue(_stage(p), ensure=False)
        moved = await mover.move(_backlog(p), _only(name))
        moved += await mover.move(_stage(p), _only(name))
        for ward in after[p]:
            await queue.bind(exchange, partitions.ward_binding(ward))
            await stage.unbind(exchange, partitions.ward_binding(ward))
        if p == unknown_p:
            await queue.bind(unknown, "")
            await stage.unbind(unknown, "")
        moved += await mover.move(_stage(p), _only(name))
        await _delete_empty(connection, channel, _backlog(p))
        await _delete_empty(connection, channel, _stage(p))
        delivered += moved
        say(f"{name}: {len(after[p])} wards, {moved} messages")
    # 4. The learned state follows the wards.
    series, rows = await regroup_checkpoints(store_url, new, catalogue)
    say(f"{rows} checkpoints regrouped into {new} ({series} series)")
    # 5. Done.
    await channel.queue_delete(LOCK_QUEUE)
    await channel.close()
    moved_wards = sum(1 for w in new_of if new_of[w] != old_of[w])
    return ResizeReport(old, new, moved_wards, delivered, series, rows)


async def _refuse_unless_checkpoints_of(store_url: str, old: int) -> None:
    store = await CheckpointStore.open(store_url)
    try:
        rows = await store.all()
    finally:
        await store.close()
    stale = sorted(r.partition for r in rows if r.partitions != old)
    if stale:
        raise ResizeRefusedError(
            f"the checkpoints of partitions {stale} were made with another number of "
            f"partitions than the broker's {old}: the store is not this broker's"
        )


async def regroup_checkpoints(
    store_url: str, new: int, wards: Collection[str] | None = None
) -> tuple[int, int]:
    """Every partition checkpoint regrouped by ward into ``new`` partitions' ones (a ward
    outside the catalogue ``wards``, by default the shipped one, into partition 0), at a
    version above every old one (a worker holding an old one reloads), in one
    transaction. (series, old checkpoints read)"""
    store = await CheckpointStore.open(store_url)
    try:
        rows = await store.all()
        if not rows:
            return 0, 0

        def target_of(ward: str) -> int:
            return partitions.partition_of(ward, new, wards)

        detectors = await asyncio.to_thread(
            lambda: regroup([partition_state.detector_of(r, None) for r in rows], target_of, new)
        )
        states = await asyncio.to_thread(lambda: [d.to_bytes() for d in detectors])
        lives = liveness_state.regroup(
            [live for r in rows if (live := partition_state.liveness_of(r)) is not None],
            target_of,
            new,
        )
        infos: list[list[DeviceInfo]] = [[] for _ in range(new)]
        for r in rows:
            for info in partition_state.devices_of(r).known():
                infos[target_of(info.ward)].append(info)
        clocks = [r.clock_ms for r in rows if r.clock_ms is not None]
        clock_ms = max(clocks) if clocks else None
        at_ms = max(r.saved_ms for r in rows if r.clock_ms == clock_ms) if clocks else None
        version = max(r.version for r in rows) + 1
        async with store.engine.begin() as conn:
            await conn.execute(checkpoints.delete())
            await conn.execute(checkpoint_deltas.delete())
            await conn.execute(
                checkpoints.insert(),
                [
                    {
                        "partition": p,
                        "partitions": new,
                        "version": version,
                        "state": states[p],
                        "devices": msgspec.json.encode(sorted(infos[p], key=lambda i: i.id)),
                        "saved_ms": at_ms if at_ms is not None else max(r.saved_ms for r in rows),
                        "worker": "citywatch partitions resize",
                        "clock_ms": clock_ms,
                        "liveness": lives[p],
                        "lease_ms": 0,
                        "full_version": version,
                    }
                    for p in range(new)
                ],
            )
        return sum(d.registry.size for d in detectors), len(rows)
    finally:
        await store.close()
