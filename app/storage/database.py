"""Async engine creation and schema migration (Alembic) for PostgreSQL and SQLite.

On PostgreSQL the engine connects with the configuration every pool shares
(app/storage/postgres_connection.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.settings import Settings
from app.storage.postgres_connection import connection_settings
from app.storage.tls import explain

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# Serializes concurrent migrations from several tasks/processes on PostgreSQL.
MIGRATION_LOCK_ID = 0x5E45_0001
MIGRATION_LOCK_POLL_SECONDS = 0.2


def create_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    """`pool_size` (PostgreSQL; default `settings.db_pool_size`, with as much overflow): the ingestion
    service passes a small one, as its hot paths use their own asyncpg pools."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=pool_size or settings.db_pool_size,
        pool_pre_ping=True,
        pool_recycle=300,
        connect_args=connection_settings(settings, "sensor-ingest"),
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while the group-commit writer writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to head. On PostgreSQL an advisory lock makes concurrent starts safe.

    A certificate that does not verify raises `DatabaseTlsError` saying what was checked."""
    try:
        await _migrate(engine)
    except Exception as error:
        explained = explain(error, engine.url.host)
        if explained is error:
            raise
        raise explained from error


async def _migrate(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            await _take_migration_lock(connection)
        try:
            await connection.run_sync(_upgrade)
            await connection.commit()
        finally:
            if engine.dialect.name == "postgresql":
                await connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})")
                await connection.commit()


async def _take_migration_lock(connection) -> None:
    """The session-level advisory lock, polled rather than waited for: a task waiting inside a statement
    holds a snapshot, and CREATE INDEX CONCURRENTLY in the task that migrates waits for every snapshot
    (a deadlock). Between tries this session has no transaction open; the lock stays with the session,
    and the transactions are Alembic's to own (one per migration, some outside any)."""
    while not (await connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({MIGRATION_LOCK_ID})")).scalar():
        await connection.commit()
        await asyncio.sleep(MIGRATION_LOCK_POLL_SECONDS)
    await connection.commit()


def _upgrade(sync_connection) -> None:
    config = alembic_config(str(sync_connection.engine.url))
    config.attributes["connection"] = sync_connection
    command.upgrade(config, "head")


def run_migrations(settings: Settings) -> None:
    """Synchronous entry point (`python -m app.storage.database`)."""

    async def _run() -> None:
        engine = create_engine(settings)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(_run())


if __name__ == "__main__":
    from app.settings import load_settings

    run_migrations(load_settings())
