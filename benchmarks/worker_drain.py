"""Drain rate of cluster workers from RabbitMQ, beside a bare AMQP consumer, in one run.

A private RabbitMQ node (MQTT plugin), influxd and a fresh PostgreSQL database per run.
The simulator's stream (``citywatch simulate --output``) is loaded into the 8 partition
queues over AMQP (persistent, confirmed), then drained three times:

1. a bare consumer that only acknowledges (the broker's ceiling on this machine);
2. one ``citywatch worker`` (decode, InfluxDB write, detection, alert store, checkpoint
   per batch, then ack);
3. two workers started together (single active consumer: each partition goes to the
   worker that subscribed first, then the workers balance themselves, a partition a
   tick: :mod:`citywatch.membership`).

The rate is counted from the first acknowledged message to the last (the worker's own
``citywatch_worker_messages_total`` counter), so the kernel's load is not in it.

    .venv/bin/python benchmarks/worker_drain.py --devices 2000 --reports 30
"""

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
import asyncpg
import httpx

from citywatch import partitions
from citywatch.local_services import LocalInfluxd, LocalRabbitMQ, free_port
from simulators.wards import load_wards

CITYWATCH = str(Path(sys.executable).with_name("citywatch"))
PG = "postgresql://postgres@127.0.0.1:5432"


async def load(url: str, stream: Path) -> int:
    rows = [json.loads(line) for line in stream.read_text().splitlines()]
    connection = await aio_pika.connect(url)
    async with connection:
        await partitions.declare(connection, 8, [w.codename for w in load_wards()])
        channel = await connection.channel()
        exchange = await channel.get_exchange(partitions.EXCHANGE)
        for start in range(0, len(rows), 500):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            json.dumps(r["payload"]).encode(),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=partitions.routing_key_of(r["topic"]),
                    )
                    for r in rows[start : start + 500]
                )
            )
    return len(rows)


async def bare(url: str, total: int) -> float:
    connection = await aio_pika.connect(url)
    got = 0
    first = last = 0.0
    done = asyncio.Event()
    async with connection:
        for p in range(8):
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=2000)
            queue = await channel.get_queue(partitions.queue_name(p), ensure=False)

            async def on(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                nonlocal got, first, last
                await message.ack()
                got += 1
                if got == 1:
                    first = time.perf_counter()
                if got >= total:
                    last = time.perf_counter()
                    done.set()

            await queue.consume(on)
        await done.wait()
    return total / (last - first)


async def _database(name: str, create: bool) -> None:
    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
        else:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def workers(rabbit: LocalRabbitMQ, influx: str, n: int, total: int, root: Path) -> list[float]:
    db = f"cw_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_database(db, True))
    ports = [free_port() for _ in range(n)]
    procs = [
        subprocess.Popen(
            [
                CITYWATCH,
                "worker",
                "--engine",
                rabbit.url,
                "--influx",
                influx,
                "--database",
                db,
                "--store",
                f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{db}",
                "--data-dir",
                str(root / f"w{k}"),
                "--metrics-port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(root / f"w{k}.log").open("wb"),
        )
        for k, port in enumerate(ports)
    ]

    def counts() -> list[int]:
        out = []
        for port in ports:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
            except httpx.HTTPError:
                out.append(0)
                continue
            value = [
                line.split()[-1]
                for line in text.splitlines()
                if line.startswith("citywatch_worker_messages_total")
            ]
            out.append(int(float(value[0])) if value else 0)
        return out

    try:
        first: list[float | None] = [None] * n
        last: list[float] = [0.0] * n
        seen = [0] * n
        while sum(seen) < total:
            now = time.perf_counter()
            current = counts()
            for k, c in enumerate(current):
                if c and first[k] is None:
                    first[k] = now
                if c > seen[k]:
                    last[k] = now
            seen = current
            time.sleep(0.1)
        rates = []
        for k in range(n):
            start = first[k]
            rates.append(seen[k] / (last[k] - start) if start and last[k] > start else 0.0)
        print(f"  {n} worker(s): messages per worker {seen}")
        return rates
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(60)
        asyncio.run(_database(db, False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--reports", type=int, default=30, help="reports per device")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalRabbitMQ() as rabbit, LocalInfluxd() as db:
        root = Path(tmp)
        stream = root / "stream.jsonl"
        subprocess.run(
            [
                *(CITYWATCH, "simulate", "--output", str(stream)),
                *("--devices", str(args.devices), "--duration", str(args.reports * 60)),
                *("--period", "60", "--no-progress"),
            ],
            check=True,
            capture_output=True,
        )
        total = asyncio.run(load(rabbit.url, stream))
        print(f"{total} messages ({args.devices} devices × {args.reports} reports + statuses)")
        print(f"bare AMQP consumer (ack only): {asyncio.run(bare(rabbit.url, total)):,.0f} msg/s")
        for n in (1, 2):
            asyncio.run(load(rabbit.url, stream))
            rates = workers(rabbit, db.url, n, total, root)
            shown = ", ".join(f"{r:,.0f}" for r in rates)
            print(f"{n} worker(s): per worker {shown} msg/s; together {sum(rates):,.0f} msg/s")


if __name__ == "__main__":
    main()
