"""Alembic migrations: up to head, down to base, up again, on SQLite and PostgreSQL; the
migrated schema is exactly the one the store's tables describe."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from conftest import fresh_database

from alerts import apikeys
from alerts.engine import StoreUrlError, make_engine
from alerts.migrate import MIGRATIONS, alembic_config, current, downgrade, upgrade
from alerts.schema import metadata
from alerts.store import AlertStore
from anomaly.events import Detection, DetectionKind, Reference, Severity

OLD_KEY = "cw_0123456789ab_" + "s" * 43


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
        return
    with fresh_database("citywatch_migrations_test") as url:
        yield url


def _tables(conn: sa.Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names()) - {"alembic_version"}


def _diff(conn: sa.Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


async def test_up_down_up_round_trip_matches_the_tables(url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    engine = make_engine(url)
    try:
        assert await current(engine) is None
        await upgrade(engine)
        assert await current(engine) == head
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == set(metadata.tables)
            assert await conn.run_sync(_diff) == []
        await upgrade(engine)  # idempotent at head
        await downgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == set()
        assert await current(engine) is None
        await upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_0007_keeps_existing_keys_with_no_language(url: str) -> None:
    """Keys made before 0007 come through with ``lang`` NULL (not chosen) and verify as
    before; the column goes away on the way down and the key stays."""
    engine = make_engine(url)
    try:
        await upgrade(engine, "0006")
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO api_keys (id, name, role, wards, secret_sha256, created_at) "
                    "VALUES ('0123456789ab', 'old crew', 'crew', '[\"phuong_dinh_cong\"]', "
                    ":digest, 1)"
                ),
                {"digest": apikeys.digest(OLD_KEY)},
            )
        await upgrade(engine)
        async with engine.connect() as conn:
            row = (await conn.execute(sa.text("SELECT name, lang FROM api_keys"))).one()
        assert tuple(row) == ("old crew", None)
    finally:
        await engine.dispose()
    store = await AlertStore.open(url)
    try:
        record = await store.verify_api_key(OLD_KEY)
        assert record is not None
        assert (record.name, record.wards, record.lang) == ("old crew", ("phuong_dinh_cong",), None)
        made, _ = await store.create_api_key("noc", lang="en")
        assert made.lang == "en"
        with pytest.raises(ValueError, match="unknown language 'fr': use vi"):
            await store.create_api_key("noc", lang="fr")
    finally:
        await store.close()
    engine = make_engine(url)
    try:
        await downgrade(engine, "0006")
        async with engine.connect() as conn:
            names = await conn.run_sync(
                lambda c: {col["name"] for col in sa.inspect(c).get_columns("api_keys")}
            )
            assert "lang" not in names
            assert await conn.scalar(sa.text("SELECT count(*) FROM api_keys")) == 2
    finally:
        await engine.dispose()


async def test_0008_gives_stored_alerts_the_metric_their_value_reads(url: str) -> None:
    """An alert stored before 0008 (made here by going down to 0007 and up again) comes
    back with ``value_metric`` its own metric, and no reference."""
    store = await AlertStore.open(url)
    try:
        await store.apply_detection(
            Detection(
                kind=DetectionKind.LIMIT,
                severity=Severity.CRITICAL,
                active=True,
                ward="phuong_dinh_cong",
                device="cab-1",
                metric="temp_inside",
                value=57.5,
                value_metric="temp_inside",
                reference=55.0,
                reference_kind=Reference.LIMIT,
                start_ms=1,
                ts_ms=1,
                score=1.0,
                explanation="hot",
            )
        )
    finally:
        await store.close()
    engine = make_engine(url)
    try:
        await downgrade(engine, "0007")
        await upgrade(engine)
    finally:
        await engine.dispose()
    store = await AlertStore.open(url)
    try:
        [alert] = (await store.list_alerts()).data
    finally:
        await store.close()
    assert (alert.metric, alert.value, alert.value_metric) == ("temp_inside", 57.5, "temp_inside")
    assert (alert.reference, alert.reference_kind) == (None, None)


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("PRAGMA journal_mode")) == "wal"
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("mysql://x@y/z", "unsupported store URL scheme 'mysql'"),
        ("postgresql+psycopg2://x@y/z", "unsupported store URL scheme 'postgresql\\+psycopg2'"),
        ("sqlite://", "needs a file path"),
        ("sqlite+aiosqlite://", "needs a file path"),
        ("sqlite+aiosqlite:///:memory:", "needs a file path"),
        ("not a url", "not a database URL"),
    ],
)
def test_bad_store_urls_are_refused(bad: str, message: str) -> None:
    with pytest.raises(StoreUrlError, match=message):
        make_engine(bad)


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///{path}", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///{path}", "sqlite+aiosqlite"),
        ("postgresql://root@127.0.0.1/test", "postgresql+asyncpg"),
        ("postgres://root@127.0.0.1/test", "postgresql+asyncpg"),
    ],
)
async def test_conventional_store_urls_get_the_async_driver(
    given: str, driver: str, tmp_path: Path
) -> None:
    """``sqlite:///…`` and ``postgresql://…`` as users write them (they were refused)."""
    engine = make_engine(given.format(path=tmp_path / "a.db"))
    try:
        assert engine.url.drivername == driver
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT 1")) == 1
    finally:
        await engine.dispose()


def test_the_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert list((MIGRATIONS / "versions").glob("0001_*.py"))
