"""Alert store write throughput: detections/s into the lifecycle, batched vs one by one.

A burst of detections (new alerts, then the same keys again, then their clearing) goes
into a fresh store two ways in the same run: one transaction per batch of ``--batch``
detections (what the pipeline does) and one transaction per detection (the baseline).
Each runs alone and beside ``--busy`` Python threads spinning in pure Python, which is
what ingest's threads do to the pipeline's event loop: every database round trip of the
async driver is a thread hop that then waits for the GIL.

Usage: ``.venv/bin/python benchmarks/alert_store.py [--detections 1000] [--batch 200]
[--busy 1] [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/DB]``
"""

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from alerts.schema import metadata
from alerts.store import AlertStore
from anomaly.events import Detection, DetectionKind, Severity


def burst(n: int, active: bool, ts_ms: int) -> list[Detection]:
    return [
        Detection(
            kind=DetectionKind.FLOODING,
            severity=Severity.MAJOR,
            active=active,
            ward=f"ward_{i % 50}",
            device=f"cab_{i}",
            start_ms=ts_ms,
            ts_ms=ts_ms,
            score=0.9 if active else 0.0,
            explanation="water in the plinth",
        )
        for i in range(n)
    ]


@contextmanager
def busy_threads(count: int) -> Iterator[None]:
    """``count`` threads holding the GIL as much as pure Python does."""
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            for _ in range(1000):
                x += 1

    threads = [threading.Thread(target=spin, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join()


async def empty(store: AlertStore) -> None:
    async with store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())


async def measure(url: str, n: int, batch: int, one_by_one: bool) -> float:
    """Detections/s over open, repeat and clear of ``n`` keys."""
    store = await AlertStore.open(url)
    try:
        await empty(store)
        rounds = [burst(n, True, 1_000), burst(n, True, 2_000), burst(n, False, 3_000)]
        started = time.perf_counter()
        for step, detections in enumerate(rounds):
            now = (step + 1) * 1_000
            if one_by_one:
                for d in detections:
                    await store.apply_detection(d, now_ms=now)
            else:
                for i in range(0, n, batch):
                    await store.apply_detections(detections[i : i + batch], now_ms=now)
        elapsed = time.perf_counter() - started
        async with store.engine.connect() as conn:
            alerts = await conn.scalar(sa.text("SELECT count(*) FROM alerts"))
        assert alerts == n, f"expected {n} alerts, found {alerts}"
        return 3 * n / elapsed
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detections", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--busy", type=int, default=1, help="busy Python threads beside")
    parser.add_argument("--postgres", help="also measure this PostgreSQL database URL")
    args = parser.parse_args()
    if args.detections < 1 or args.batch < 1 or args.busy < 0:
        parser.error("--detections and --batch must be >= 1, --busy >= 0")
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite+aiosqlite:///{Path(tmp) / 'alerts.db'}"}
        if args.postgres:
            urls["postgresql"] = args.postgres
        print(f"{args.detections:,} keys opened, repeated and cleared; batches of {args.batch}")
        print(f"{'store':<11}{'busy':>5}{'batched det/s':>15}{'one-by-one':>12}{'ratio':>8}")
        for name, url in urls.items():
            for busy in sorted({0, args.busy}):
                with busy_threads(busy):
                    # The baseline on a tenth of the keys: it is the slow one.
                    base = asyncio.run(measure(url, max(1, args.detections // 10), 1, True))
                    ours = asyncio.run(measure(url, args.detections, args.batch, False))
                print(f"{name:<11}{busy:>5}{ours:>15,.0f}{base:>12,.0f}{ours / base:>7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
