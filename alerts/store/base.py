"""What every part of the store shares: the engine, the write turn, errors and paging."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerts.correlation import DeviceDirectory, no_directory
from alerts.engine import make_engine, writer
from alerts.migrate import upgrade
from alerts.policy import Policy

T = TypeVar("T")
Clock = Callable[[], int]
MAX_LIMIT = 1000


def wall_clock_ms() -> int:
    """Epoch milliseconds now (the store's default clock)."""
    return time.time_ns() // 1_000_000


class StoreError(RuntimeError):
    """The store could not do what was asked."""


class NotFoundError(StoreError, LookupError):
    """No alert, incident, silence or key with that id."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list and the total number of matches (``{"data", "count"}``)."""

    data: list[T]
    count: int


class StoreBase:
    """The connection to the database every concern of the store works through.

    Build with :meth:`open` (runs migrations); ``now_ms`` arguments default to the
    injected ``clock``.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        policy: Policy | None = None,
        directory: DeviceDirectory = no_directory,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self.engine = engine
        self._writer = writer(engine)
        self.policy = policy or Policy()
        self.directory = directory
        self.clock = clock
        self._write_turn = asyncio.Lock()
        """This process's writers take turns in FIFO order before the database lock: a
        busy writer re-taking SQLite's lock at once would otherwise starve the others
        (acknowledgements, the delivery log) until their busy timeout fails them."""

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        policy: Policy | None = None,
        directory: DeviceDirectory = no_directory,
        clock: Clock = wall_clock_ms,
        migrate: bool = True,
    ) -> Self:
        """Connect to ``url`` and (by default) migrate the schema to the latest revision."""
        engine = make_engine(url)
        if migrate:
            try:
                await upgrade(engine)
            except BaseException:
                await engine.dispose()
                raise
        return cls(engine, policy=policy, directory=directory, clock=clock)

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def _begin_write(self) -> AsyncIterator[AsyncConnection]:
        async with self._write_turn, self._writer.begin() as conn:
            yield conn

    async def ping(self) -> None:
        """Raise unless the database answers (for readiness probes)."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))


def check_paging(skip: int, limit: int) -> None:
    if skip < 0:
        raise ValueError(f"skip must be >= 0, got {skip}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be in 1..{MAX_LIMIT}, got {limit}")


def dialect_insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """An INSERT with ``ON CONFLICT`` clauses in this connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    """Slices short enough for any database's limit on bound parameters."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
