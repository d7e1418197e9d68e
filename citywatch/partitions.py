"""The cluster's partition topology on RabbitMQ, owned by citywatch.

Devices publish over RabbitMQ's MQTT listener; the plugin routes every message into the
topic exchange ``amq.topic`` with the MQTT topic's ``/`` turned into ``.``
(``cw/v1/phuong_hoan_kiem/cabinet/cab-1/telemetry`` → ``cw.v1.phuong_hoan_kiem.cabinet.
cab-1.telemetry``). citywatch declares ``N`` partition queues — quorum queues (replicated
across the cluster) with a single active consumer (one worker at a time, fail-over by the
broker) — and routes every device message to one of them::

    amq.topic ─cw.v1.#─▶ cw.city (topic) ─cw.v1.<ward>.#─▶ cw.partition.<crc32(ward) mod N>
                             │      └─cw.v1._deadletter.#─▶ cw.deadletter
                             └─ alternate exchange ─▶ cw.unknown-wards (fanout) ─▶ cw.partition.000

Each catalogue ward's topics ``cw.v1.<ward>.#`` are bound to partition ``crc32(ward) mod
N`` (a stable hash: Python's ``hash`` is salted per process). A message that no binding
of ``cw.city`` takes — a device of a ward outside the ward catalogue, or a topic too
short to name a ward — goes to ``cw.city``'s alternate exchange and from there to
partition 0 (:data:`UNKNOWN_WARD_PARTITION`), where a worker stores and scores it like any
other (or dead-letters it with its reason): the broker drops nothing under ``cw/v1/``
that it acknowledged, as Mosquitto in single-node mode drops nothing ingest subscribes
to. Every unknown ward thus has one partition too, its area rules one detector.

Why by ward: a device's telemetry, events and status, a ward's area rules and its cable
routes then stay on one partition, so one detector sees them all. (The consistent-hash
exchange would hash the whole routing key, splitting a device's channels.) Why an
exchange of citywatch's own between ``amq.topic`` and the queues: an alternate exchange
is an argument given when an exchange is declared, and ``amq.topic`` is the broker's
(predeclared, and the MQTT plugin's: it must exist before devices connect).

Every declaration is idempotent; ``N`` is part of the topology: a worker or ``partitions
apply`` asking for another ``N`` than the queues that exist is refused
(:class:`PartitionMismatchError`) instead of silently splitting a ward's stream. Dead
letters (``cw/v1/_deadletter/<reason>``, published to ``amq.topic`` like the devices'
messages) are kept in the durable queue ``cw.deadletter``; their binding is on
``cw.city`` so that they are routed there, not to the unknown wards' partition.

A cluster set up before ``cw.city`` existed (its queues bound to ``amq.topic`` directly)
moves over in :func:`declare` (``partitions apply``, or a worker starting), in an order
that drops nothing: ``cw.city`` and every binding on it first, then ``cw.city`` bound to
``amq.topic``, and only then the old direct bindings removed. In between a message
reaches its queue by two paths; RabbitMQ puts it in that queue once.

RabbitMQ 3.10 pitfalls this avoids: the MQTT plugin's exchange must exist before devices
connect (``amq.topic`` always does); ``x-overflow: reject-publish`` is not used (the MQTT
plugin would never PUBACK); single active consumer fails over but does not rebalance
when a worker returns: the workers balance themselves (:mod:`citywatch.membership`;
``partitions show`` tells who is active).
"""

import functools
import zlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from telemetry.wards import load_wards

EXCHANGE: Final = "amq.topic"
"""The MQTT plugin's exchange: where devices' messages (and dead letters) are published."""
CITY_EXCHANGE: Final = "cw.city"
"""citywatch's own topic exchange, bound to ``amq.topic`` with :data:`CITY_BINDING`: the
partitions' bindings are on it."""
CITY_BINDING: Final = "cw.v1.#"
UNKNOWN_WARDS_EXCHANGE: Final = "cw.unknown-wards"
"""``cw.city``'s alternate exchange (fanout): what no ward binding takes."""
UNKNOWN_WARD_PARTITION: Final = 0
"""The partition of every ward outside the catalogue (and of topics naming no ward)."""
QUEUE_PREFIX: Final = "cw.partition."
DEADLETTER_QUEUE: Final = "cw.deadletter"
DEADLETTER_BINDING: Final = "cw.v1._deadletter.#"
RESIZE_LOCK: Final = "cw.resize.lock"
"""Exists while ``citywatch partitions resize`` runs (:mod:`citywatch.repartition`)."""
DEFAULT_PARTITIONS: Final = 8
MAX_PARTITIONS: Final = 1000
QUEUE_ARGUMENTS: Final[dict[str, Any]] = {
    "x-queue-type": "quorum",
    "x-single-active-consumer": True,
}


class PartitionMismatchError(RuntimeError):
    """The broker holds another number of partitions than asked for."""


@functools.cache
def catalogue() -> frozenset[str]:
    """The codenames of the shipped ward catalogue: the wards that get a binding."""
    return frozenset(w.codename for w in load_wards())


def partition_of(ward: str, partitions: int, wards: Collection[str] | None = None) -> int:
    """The partition of a ward: ``zlib.crc32(ward) mod N`` (stable across processes) for a
    ward of the catalogue (``wards``, by default the shipped one), else
    :data:`UNKNOWN_WARD_PARTITION` (where the broker's alternate exchange sends it).

    >>> partition_of("phuong_hoan_kiem", 8) == zlib.crc32(b"phuong_hoan_kiem") % 8
    True
    >>> partition_of("a_ward_elsewhere", 8)
    0
    """
    known = catalogue() if wards is None else wards
    if ward not in known:
        return UNKNOWN_WARD_PARTITION
    return zlib.crc32(ward.encode()) % partitions


def partition_of_key(routing_key: str, partitions: int, wards: Collection[str]) -> int:
    """The partition a message of this routing key is in: its ward's, or
    :data:`UNKNOWN_WARD_PARTITION` for a key that names no ward (``cw.v1``)."""
    parts = routing_key.split(".", 3)
    if len(parts) < 3 or parts[0] != "cw":
        return UNKNOWN_WARD_PARTITION
    return partition_of(parts[2], partitions, wards)


def queue_name(partition: int) -> str:
    """``cw.partition.003``: sorts in partition order."""
    return f"{QUEUE_PREFIX}{partition:03d}"


def ward_binding(ward: str) -> str:
    """The routing-key pattern of every topic of a ward (all kinds, devices, channels)."""
    return f"cw.v1.{ward}.#"


def topic_of(routing_key: str) -> str:
    """The MQTT topic of a routing key the MQTT plugin made (ids hold no ``.``)."""
    return routing_key.replace(".", "/")


def routing_key_of(topic: str) -> str:
    return topic.replace("/", ".")


def partition_map(wards: Iterable[str], partitions: int) -> dict[int, list[str]]:
    """Partition → its catalogue wards (sorted, ``wards`` being the catalogue), every
    partition present; the wards outside it are partition 0's too."""
    out: dict[int, list[str]] = {p: [] for p in range(partitions)}
    for ward in sorted(wards):
        out[zlib.crc32(ward.encode()) % partitions].append(ward)
    return out


def check_partitions(partitions: int) -> None:
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ValueError(f"partitions must be 1..{MAX_PARTITIONS}, not {partitions}")


@dataclass(frozen=True)
class QueueInfo:
    partition: int
    queue: str
    messages: int
    consumers: int
    wards: int


async def queue_counts(connection: AbstractConnection, name: str) -> tuple[int, int] | None:
    """(messages ready, consumers) of a queue, None if it does not exist. A passive
    declare of a missing queue closes its channel, hence a channel per probe."""
    channel = await connection.channel(publisher_confirms=False)
    try:
        queue = await channel.declare_queue(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    result = queue.declaration_result
    with_counts = (int(result.message_count or 0), int(result.consumer_count or 0))
    await channel.close()
    return with_counts


async def existing_partitions(connection: AbstractConnection) -> int:
    """How many partition queues exist (0 when none): queues 0..k-1 exist, k does not."""
    count = 0
    while count < MAX_PARTITIONS and await queue_counts(connection, queue_name(count)) is not None:
        count += 1
    return count


async def exchange_exists(connection: AbstractConnection, name: str) -> bool:
    """Whether an exchange exists (a passive declare of a missing one closes its channel,
    hence a channel of its own)."""
    channel = await connection.channel(publisher_confirms=False)
    try:
        await channel.get_exchange(name, ensure=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return False
    await channel.close()
    return True


async def _declare_queue(channel: AbstractChannel, name: str) -> None:
    await channel.declare_queue(name, durable=True, arguments=QUEUE_ARGUMENTS)


async def declare_exchanges(channel: AbstractChannel) -> tuple[AbstractExchange, AbstractExchange]:
    """``cw.city`` and its alternate exchange ``cw.unknown-wards`` (idempotent; not bound
    to anything here): (cw.city, cw.unknown-wards)."""
    unknown = await channel.declare_exchange(
        UNKNOWN_WARDS_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
    )
    city = await channel.declare_exchange(
        CITY_EXCHANGE,
        aio_pika.ExchangeType.TOPIC,
        durable=True,
        arguments={"alternate-exchange": UNKNOWN_WARDS_EXCHANGE},
    )
    return city, unknown


async def declare(
    connection: AbstractConnection, partitions: int, wards: Sequence[str]
) -> dict[int, list[str]]:
    """Declare the exchanges, the partition queues, every ward's binding, the unknown
    wards' route and the dead-letter queue (idempotent); refuse a mismatch with the
    partitions that exist. Moves a cluster of the old layout (queues bound to
    ``amq.topic``) over without a gap (see the module's text). The map."""
    check_partitions(partitions)
    if await queue_counts(connection, RESIZE_LOCK) is not None:
        raise PartitionMismatchError(
            f"the partitions are being changed (the queue {RESIZE_LOCK} exists): wait for "
            "citywatch partitions resize to finish, then use the --partitions it set"
        )
    found = await existing_partitions(connection)
    if found not in (0, partitions):
        raise PartitionMismatchError(
            f"the broker holds {found} partition queues ({queue_name(0)}…), this asks for "
            f"{partitions}: every worker must use --partitions {found}"
        )
    mapping = partition_map(wards, partitions)
    channel = await connection.channel()
    try:
        # Passive: amq.topic always exists and stays the MQTT plugin's exchange (a custom
        # one would have to be declared before devices connect, or 3.10 never PUBACKs).
        devices = await channel.get_exchange(EXCHANGE, ensure=True)
        city, unknown = await declare_exchanges(channel)
        queues = {}
        for partition, members in mapping.items():
            name = queue_name(partition)
            await _declare_queue(channel, name)
            queue = queues[partition] = await channel.get_queue(name, ensure=False)
            for ward in members:
                await queue.bind(city, ward_binding(ward))
        await queues[UNKNOWN_WARD_PARTITION].bind(unknown, "")
        dead = await channel.declare_queue(DEADLETTER_QUEUE, durable=True)
        await dead.bind(city, DEADLETTER_BINDING)
        # Every route inside cw.city exists: only now does it receive the devices' messages
        # (earlier, a catalogue ward's would have gone to the unknown wards' partition)...
        await city.bind(devices, CITY_BINDING)
        # ... and only then do the direct bindings of the old layout go (unbinding one that
        # does not exist is fine): nothing finds no route in between.
        for partition, members in mapping.items():
            for ward in members:
                await queues[partition].unbind(devices, ward_binding(ward))
        await dead.unbind(devices, DEADLETTER_BINDING)
    finally:
        await channel.close()
    return mapping


async def show(connection: AbstractConnection, wards: Sequence[str]) -> list[QueueInfo]:
    """The partition queues that exist, with their backlog and consumer count."""
    found = await existing_partitions(connection)
    mapping = partition_map(wards, found) if found else {}
    out = []
    for partition in range(found):
        counts = await queue_counts(connection, queue_name(partition))
        messages, consumers = counts or (0, 0)
        out.append(
            QueueInfo(
                partition, queue_name(partition), messages, consumers, len(mapping[partition])
            )
        )
    return out


async def connect(url: str) -> AbstractConnection:
    """An AMQP connection (``amqp://USER:PASS@HOST:PORT/VHOST``)."""
    return await aio_pika.connect(url)
