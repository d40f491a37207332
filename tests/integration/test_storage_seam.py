"""The storage seam (app/storage/backends.py) and the one "unavailable" error (app/errors.py), on real
backends: every PostgreSQL pool connects with the same session settings, SQLite serves writes and
reads through the engine, the read API's storage refuses writes, and a write and a read that cannot be
served both answer 503 with Retry-After through the same handler."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.storage.backends import open_read_only_storage, open_storage
from app.storage.database import migrate
from app.storage.repository import ScoredReading
from tests.support.app import LOADTEST, token_headers

READING = ScoredReading("seam-device", "temperature", datetime(2026, 1, 1, tzinfo=UTC), 21.5, False, None)


def test_every_postgres_pool_has_the_same_statement_timeout(postgres_url: str) -> None:
    async def scenario() -> dict[str, str]:
        storage = open_storage(Settings(database_url=postgres_url, db_statement_timeout_seconds=1.5))
        try:
            await migrate(storage.engine)
            (stored,) = await storage.store_group([READING])
            assert (await storage.history([(READING.device_id, READING.tag)], 5)) == {
                (READING.device_id, READING.tag): [21.5]}
            # What each pool's own connections say (the writer had none before this seam).
            writer_pool = await storage._group_writer._pool.get()
            reader_pool = await storage._reader._pool.get()
            async with storage.engine.connect() as connection:
                engine_timeout = (await connection.exec_driver_sql("SHOW statement_timeout")).scalar_one()
            return {"writer": await writer_pool.fetchval("SHOW statement_timeout"),
                    "reader": await reader_pool.fetchval("SHOW statement_timeout"),
                    "engine": engine_timeout, "stored": str(stored.id)}
        finally:
            await storage.close()

    timeouts = asyncio.run(scenario())
    assert int(timeouts.pop("stored")) > 0
    assert timeouts == {"writer": "1500ms", "reader": "1500ms", "engine": "1500ms"}


def test_sqlite_writes_and_reads_through_the_engine_and_the_read_api_cannot_write(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/seam.db")

    async def scenario() -> None:
        storage = open_storage(settings)
        try:
            await migrate(storage.engine)
            assert storage.writers == 1
            (first,) = await storage.store_group([READING])
            (again,) = await storage.store_group([READING])
            assert (first.duplicate, again.duplicate, again.id) == (False, True, first.id)
            rows = await storage.reads.readings(tag="temperature", device_id=None, since=None, until=None, limit=5)
            assert [row["id"] for row in rows] == [first.id]
        finally:
            await storage.close()
        read_only = open_read_only_storage(settings)
        try:
            assert (await read_only.reads.tag_stats(device_id=None))[0]["count"] == 1
            with pytest.raises(RuntimeError, match="must not write"):
                await read_only.store_group([READING])
        finally:
            await read_only.close()

    asyncio.run(scenario())


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_write_and_a_read_that_cannot_be_served_both_answer_503(tmp_path: Path) -> None:
    """Database refused and the dead-letter directory impossible (under a plain file): the write's
    `storage_unavailable` and the read's `database_unavailable` share one status and Retry-After."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings = Settings(database_url=f"postgresql+asyncpg://sensor@127.0.0.1:{_closed_port()}/sensors",
                        dead_letter_dir=blocker / "dead-letter", db_retry_attempts=1, db_statement_timeout_seconds=1.0,
                        dead_letter_window_seconds=0.01, metrics_flush_seconds=3600, query_cache_seconds=0)
    with TestClient(create_app(settings)) as client:
        client.headers.update(token_headers(client, LOADTEST))
        write = client.post("/ingest", json={"timestamp": "2026-01-01T00:00:00", "tag": "temperature", "value": 20})
        read = client.get("/data?limit=1")
    assert (write.status_code, write.json()["error"]["code"]) == (503, "storage_unavailable"), write.text
    assert (read.status_code, read.json()["error"]["code"]) == (503, "database_unavailable"), read.text
    assert write.headers["Retry-After"] == read.headers["Retry-After"] == "5"
