"""Migration 0004 on a real PostgreSQL: the anomaly index becomes partial, built CONCURRENTLY, and an
upgrade that failed half-way (an INVALID index left behind) is repaired by the next start."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from alembic import command

from app.main import _migrate_or_retry_later
from app.settings import Settings
from app.storage.database import alembic_config, create_engine, migrate
from tests.support.services import migrate_to_head

INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'readings' AND indexname LIKE '%anomal%'"
VALID = "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('ix_readings_anomalies')"
START = datetime(2002, 3, 4, tzinfo=UTC)


def _downgrade_to(url: str, revision: str) -> None:
    async def run() -> None:
        engine = create_engine(Settings(database_url=url))
        try:
            async with engine.connect() as connection:
                def downgrade(sync_connection) -> None:
                    config = alembic_config(str(sync_connection.engine.url))
                    config.attributes["connection"] = sync_connection
                    command.downgrade(config, revision)

                await connection.run_sync(downgrade)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())


def _migrate(url: str) -> None:
    asyncio.run(migrate_to_head(url))


def _query(url: str, statement: str, *arguments) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return await connection.fetch(statement, *arguments)
        finally:
            await connection.close()

    return asyncio.run(run())


def test_at_head_the_anomaly_index_is_partial_and_the_full_one_is_gone(postgres_url: str) -> None:
    indexes = dict(_query(postgres_url, INDEXES))
    assert set(indexes) == {"ix_readings_anomalies"}
    assert indexes["ix_readings_anomalies"].endswith("(tag, ts) WHERE is_anomaly")
    assert _query(postgres_url, VALID)[0][0] is True


def test_downgrade_restores_the_full_index_and_upgrade_replaces_it_again(postgres_url: str) -> None:
    _downgrade_to(postgres_url, "0003")
    assert set(dict(_query(postgres_url, INDEXES))) == {"ix_readings_anomaly_tag"}
    _migrate(postgres_url)
    assert set(dict(_query(postgres_url, INDEXES))) == {"ix_readings_anomalies"}


def test_an_invalid_index_left_by_a_failed_build_is_rebuilt_on_the_next_start(postgres_url: str) -> None:
    _downgrade_to(postgres_url, "0003")
    insert = ("INSERT INTO readings (device_id, tag, ts, value, is_anomaly) "
              "SELECT 'd', 't', $1::timestamptz + n * interval '1 second', n, n % 2 = 0 FROM generate_series(1, 6) n")
    _query(postgres_url, insert, START)
    # A concurrent build that fails (a unique index over duplicate tags) leaves an INVALID index of that name.
    with pytest.raises(asyncpg.UniqueViolationError):
        _query(postgres_url, "CREATE UNIQUE INDEX CONCURRENTLY ix_readings_anomalies ON readings (tag) WHERE is_anomaly")
    assert _query(postgres_url, VALID)[0][0] is False

    _migrate(postgres_url)

    indexes = dict(_query(postgres_url, INDEXES))
    assert set(indexes) == {"ix_readings_anomalies"}
    assert "UNIQUE" not in indexes["ix_readings_anomalies"]
    assert _query(postgres_url, VALID)[0][0] is True
    # The readings are all still there, and the anomaly query finds the anomalous half through the index.
    counted = "SELECT count(*) FILTER (WHERE is_anomaly), count(*) FROM readings WHERE ts >= $1"
    assert tuple(_query(postgres_url, counted, START - timedelta(seconds=1))[0]) == (3, 6)


def test_sqlite_gets_the_same_partial_index(tmp_path) -> None:
    """The embedded profile's SQLite schema follows the same migrations."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'sensors.db'}"
    _migrate(url)
    with sqlite3.connect(tmp_path / "sensors.db") as connection:
        indexes = dict(connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name LIKE '%anomal%'").fetchall())
    assert set(indexes) == {"ix_readings_anomalies"}
    assert indexes["ix_readings_anomalies"].endswith("(tag, ts) WHERE is_anomaly")


def test_tasks_starting_together_upgrade_once_and_all_start(postgres_url: str) -> None:
    """A deploy starts several tasks at once; each migrates on start. The one holding the lock builds the
    index CONCURRENTLY, which waits for every open snapshot: the others must wait without holding one."""
    _downgrade_to(postgres_url, "0003")

    async def start_tasks() -> None:
        engines = [create_engine(Settings(database_url=postgres_url)) for _ in range(3)]
        try:
            await asyncio.wait_for(asyncio.gather(*(migrate(engine) for engine in engines)), 60)
        finally:
            await asyncio.gather(*(engine.dispose() for engine in engines))

    asyncio.run(start_tasks())
    assert set(dict(_query(postgres_url, INDEXES))) == {"ix_readings_anomalies"}
    assert _query(postgres_url, VALID)[0][0] is True
    assert _query(postgres_url, "SELECT version_num FROM alembic_version")[0][0] == "0004"


def test_a_migration_longer_than_start_up_finishes_in_the_background_without_starting_over(
        postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """0004 on a busy table: CREATE INDEX CONCURRENTLY waits for a writer's open transaction. Start-up
    stops waiting after its timeout and serves; the same build finishes once the writer commits (it is
    not cancelled, which would leave an INVALID index and start the build over)."""
    _downgrade_to(postgres_url, "0003")
    insert = "INSERT INTO readings (device_id, tag, ts, value, is_anomaly) VALUES ('w', 't', $1, 1.0, false)"

    async def scenario() -> tuple[bool, bool]:
        writer = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
        engine = create_engine(Settings(database_url=postgres_url))
        tasks: list[asyncio.Task] = []
        try:
            transaction = writer.transaction()
            await transaction.start()
            await writer.execute(insert, START)  # holds the table's RowExclusiveLock until it ends
            migrated = await _migrate_or_retry_later(engine, tasks, wait_seconds=0.5)
            served_before_migrated = not migrated.is_set()
            await transaction.commit()
            await asyncio.wait_for(migrated.wait(), 30)
            return served_before_migrated, migrated.is_set()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await writer.close()
            await engine.dispose()

    with caplog.at_level(logging.INFO, logger="app.main"):
        assert asyncio.run(scenario()) == (True, True)
    assert "still running after 0.5s" in caplog.text
    assert "unavailable" not in caplog.text and "failed" not in caplog.text
    assert set(dict(_query(postgres_url, INDEXES))) == {"ix_readings_anomalies"}
    assert _query(postgres_url, VALID)[0][0] is True
    assert _query(postgres_url, "SELECT count(*) FROM readings WHERE device_id = 'w'")[0][0] == 1
