"""Reads while the database cannot answer: a clean 503 with Retry-After, never a 500.

The readings table is locked (ACCESS EXCLUSIVE, as in `make drill`'s slow-db drill) on the real
PostgreSQL cluster, so every read waits until the service's statement timeout cancels it.
"""

from __future__ import annotations

import asyncio
import threading

import asyncpg
import pytest
from sqlalchemy.engine import make_url

LOCK_SECONDS = 4.0


def _hold_lock(database_url: str, locked: threading.Event) -> threading.Thread:
    url = make_url(database_url)

    async def hold() -> None:
        connection = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
        try:
            async with connection.transaction():
                await connection.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
                locked.set()
                await asyncio.sleep(LOCK_SECONDS)
        finally:
            await connection.close()

    thread = threading.Thread(target=asyncio.run, args=(hold(),), daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("path", ["/data?limit=5", "/sensors/anomalies/count?since=2020-01-01T00:00:00"])
def test_a_read_behind_a_lock_answers_503_with_retry_after(serve, settings_for, postgres_url, path) -> None:
    settings = settings_for(postgres_url, db_statement_timeout_seconds=1.0, query_cache_seconds=0)
    with serve(settings) as client:
        assert client.get(path).status_code == 200  # the same read works while nothing holds the table
        locked = threading.Event()
        holder = _hold_lock(postgres_url, locked)
        assert locked.wait(10)
        response = client.get(path)
        holder.join()
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "5"
        assert response.json()["error"]["code"] == "database_unavailable"
        assert client.get(path).status_code == 200  # and it recovers once the lock is gone
