"""Async engines for the store: SQLite (WAL) embedded, PostgreSQL shared.

``sqlite:///path/alerts.db`` or ``postgresql://user@host/db`` (the conventional forms;
they get the async drivers ``sqlite+aiosqlite`` and ``postgresql+asyncpg``, which may also
be named explicitly; ``postgres://`` is accepted as Heroku-style URLs write it). SQLite
write transactions (an engine derived with :func:`writer`) start with ``BEGIN IMMEDIATE``
so that a read-then-write transaction takes the write lock up front: two writers then
queue (busy timeout) instead of one failing half-way with "database is locked". Reads
begin deferred: under WAL they never wait for a writer, so the API and the SSE feed stay
responsive while a large burst of detections is being written.
"""

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SUPPORTED = ("sqlite+aiosqlite", "postgresql+asyncpg")
CONVENTIONAL = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}
"""Schemes written without a driver, and the async driver the store uses for each."""
SQLITE_BUSY_TIMEOUT_S = 30.0


class StoreUrlError(ValueError):
    """A store URL this layer cannot use."""


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An engine for ``url`` (see the module doc for the accepted schemes)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreUrlError(f"not a database URL: {url!r}") from exc
    if parsed.drivername in CONVENTIONAL:
        parsed = parsed.set(drivername=CONVENTIONAL[parsed.drivername])
    if parsed.drivername not in SUPPORTED:
        raise StoreUrlError(
            f"unsupported store URL scheme {parsed.drivername!r}; use sqlite:///PATH or "
            "postgresql://USER@HOST/DB (drivers aiosqlite and asyncpg)"
        )
    if parsed.drivername.startswith("sqlite"):
        if not parsed.database or parsed.database == ":memory:":
            raise StoreUrlError(
                "the SQLite store needs a file path (sqlite:///path/alerts.db): "
                "an in-memory database is private to one connection"
            )
        engine = create_async_engine(
            parsed, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}
        )
        _sqlite_pragmas(engine)
        return engine
    return create_async_engine(parsed, echo=echo, pool_pre_ping=True)


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_WRITE_OPTION = "citywatch_write"


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (and pool) for write transactions: SQLite takes the write lock at
    BEGIN; PostgreSQL is unaffected (the store serialises its writers with a lock)."""
    return engine.execution_options(**{_WRITE_OPTION: True})
