"""Schema migrations, run programmatically (no alembic.ini): ``await upgrade(engine)``.

The store calls :func:`upgrade` at start-up. On PostgreSQL an advisory lock makes
concurrent start-ups of several services take turns instead of racing.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x63770001  # arbitrary, fixed: "cw" + 1


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at this package's migrations (and a connection)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema up to ``revision``."""
    async with engine.begin() as conn:
        await conn.run_sync(_run, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    """Take the schema down to ``revision`` (``base``: no tables)."""
    async with engine.begin() as conn:
        await conn.run_sync(_run, "downgrade", revision)


async def current(engine: AsyncEngine) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


def _run(connection: Connection, action: str, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
    config = alembic_config(connection)
    if action == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)
