"""Shared fixtures: real Mosquitto and influxd servers, private to the test session.

Every test under ``tests/integration`` is marked ``integration``, every other test
``unit``. Set ``CITYWATCH_TEST_BROKER=mqtt://HOST:PORT`` or
``CITYWATCH_TEST_INFLUX=http://HOST:PORT`` to use an already-running server instead of a
private one (tests that stop and start servers then skip).
"""

import asyncio
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from citywatch.local_services import LocalInfluxd, LocalMosquitto, LocalRabbitMQ


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    integration_dir = Path(__file__).parent / "integration"
    for item in items:
        if integration_dir in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session", autouse=True)
def detector_kernel_compiled() -> None:
    """Compile the detector kernel into the environment's cache once, before any test
    starts ``citywatch`` in a subprocess: there it would otherwise be compiled (tens of
    seconds on a fresh environment) inside a test's own timeout."""
    from anomaly import prepare_kernel  # noqa: PLC0415 - only when the session starts

    prepare_kernel()


@dataclass(frozen=True)
class Endpoint:
    """Where a server listens, and the server itself when the tests own it."""

    url: str
    server: LocalMosquitto | LocalInfluxd | None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        assert port is not None
        return port


@pytest.fixture(scope="session")
def broker() -> Iterator[Endpoint]:
    """A Mosquitto broker shared by the session (or ``CITYWATCH_TEST_BROKER``)."""
    if url := os.environ.get("CITYWATCH_TEST_BROKER"):
        yield Endpoint(url, None)
        return
    with LocalMosquitto() as server:
        yield Endpoint(server.url, server)


@pytest.fixture
def own_broker() -> Iterator[LocalMosquitto]:
    """A broker only this test uses; it may stop and restart it."""
    with LocalMosquitto() as server:
        yield server


@pytest.fixture(scope="session")
def influx() -> Iterator[Endpoint]:
    """An influxd shared by the session (or ``CITYWATCH_TEST_INFLUX``)."""
    if url := os.environ.get("CITYWATCH_TEST_INFLUX"):
        yield Endpoint(url, None)
        return
    with LocalInfluxd() as server:
        yield Endpoint(server.url, server)


@pytest.fixture
def own_influx() -> Iterator[LocalInfluxd]:
    """An influxd only this test uses; it may stop and restart it."""
    with LocalInfluxd() as server:
        yield server


PG_SERVER = os.environ.get("CITYWATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
"""The PostgreSQL server of the tests (``postgresql://user@host:port``; trust auth, ``make
test`` starts it)."""


def _pg_admin(sql: str) -> None:
    async def execute() -> None:
        conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # In a thread of its own: the caller may be inside a running loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, execute()).result()


@contextmanager
def fresh_database(prefix: str = "citywatch_test") -> Iterator[str]:
    """A uniquely named PostgreSQL database on :data:`PG_SERVER`, dropped after: its
    ``postgresql+asyncpg://`` URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database shared by the session; tests sharing it clean up their own rows."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def store() -> Iterator[str]:
    """A database only this test uses (the cluster tests: the workers' shared store)."""
    with fresh_database("citywatch_cluster") as url:
        yield url


@pytest.fixture
def rabbit() -> Iterator[LocalRabbitMQ]:
    """A RabbitMQ node only this test uses (its own ports, MQTT listener included)."""
    with LocalRabbitMQ() as server:
        yield server


@pytest.fixture(scope="session")
def monsoon_city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The shipped ``monsoon_evening`` scenario (two simulated hours) played through the
    real platform once per session: simulators → Mosquitto → ingest → InfluxDB → detector
    → alert store → API. Yields a ``city_harness.City``."""
    from city_harness import city_run  # noqa: PLC0415 - on sys.path for integration tests only

    with city_run(
        tmp_path_factory.mktemp("city"), scenario="monsoon_evening", devices=600, seed=7
    ) as city:
        yield city
