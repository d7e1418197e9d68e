"""The cluster's partition topology on RabbitMQ, owned by citywatch.

Devices publish over RabbitMQ's MQTT listener; the plugin routes every message into the
topic exchange ``amq.topic`` with the MQTT topic's ``/`` turned into ``.``
(``cw/v1/phuong_hoan_kiem/cabinet/cab-1/telemetry`` → ``cw.v1.phuong_hoan_kiem.cabinet.
cab-1.telemetry``). citywatch declares ``N`` partition queues — quorum queues (replicated
across the cluster) with a single active consumer (one worker at a time, fail-over by the
broker) — and binds each ward's topics ``cw.v1.<ward>.#`` to partition
``crc32(ward) mod N``. A stable hash: Python's ``hash`` is salted per process.

Why by ward: a device's telemetry, events and status, a ward's area rules and its cable
routes then stay on one partition, so one detector sees them all. (The consistent-hash
exchange would hash the whole routing key, splitting a device's channels.)

Every declaration is idempotent; ``N`` is part of the topology: a worker or ``partitions
apply`` asking for another ``N`` than the queues that exist is refused
(:class:`PartitionMismatchError`) instead of silently splitting a ward's stream. Dead
letters (``cw/v1/_deadletter/<reason>``) are kept in the durable queue ``cw.deadletter``.

RabbitMQ 3.10 pitfalls this avoids: the MQTT plugin's exchange must exist before devices
connect (``amq.topic`` always does); ``x-overflow: reject-publish`` is not used (the MQTT
plugin would never PUBACK); single active consumer fails over but does not rebalance
when a worker returns (``partitions show`` tells who is active).
"""

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection

EXCHANGE: Final = "amq.topic"
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


def partition_of(ward: str, partitions: int) -> int:
    """The partition of a ward: ``zlib.crc32(ward) mod N`` (stable across processes).

    >>> partition_of("phuong_hoan_kiem", 8) == partition_of("phuong_hoan_kiem", 8)
    True
    """
    return zlib.crc32(ward.encode()) % partitions


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
    """Partition → its wards (sorted), every partition present."""
    out: dict[int, list[str]] = {p: [] for p in range(partitions)}
    for ward in sorted(wards):
        out[partition_of(ward, partitions)].append(ward)
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


async def _declare_queue(channel: AbstractChannel, name: str) -> None:
    await channel.declare_queue(name, durable=True, arguments=QUEUE_ARGUMENTS)


async def declare(
    connection: AbstractConnection, partitions: int, wards: Sequence[str]
) -> dict[int, list[str]]:
    """Declare the exchange, the partition queues, every ward's binding and the dead-letter
    queue (idempotent); refuse a mismatch with the partitions that exist. The map."""
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
        # Passive: amq.topic always exists; a custom exchange would have to be declared
        # before devices connect (the 3.10 MQTT plugin never PUBACKs otherwise).
        exchange = await channel.get_exchange(EXCHANGE, ensure=True)
        for partition, members in mapping.items():
            name = queue_name(partition)
            await _declare_queue(channel, name)
            queue = await channel.get_queue(name, ensure=False)
            for ward in members:
                await queue.bind(exchange, ward_binding(ward))
        dead = await channel.declare_queue(DEADLETTER_QUEUE, durable=True)
        await dead.bind(exchange, DEADLETTER_BINDING)
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
