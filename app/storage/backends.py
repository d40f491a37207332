"""The storage seam: the write and read backends, chosen once from the settings, here and only here.

On PostgreSQL group commits, the query endpoints and anomaly-window history use their own asyncpg
pools (app/storage/postgres_writer.py, app/storage/postgres_reader.py); the SQLAlchemy engine serves
migrations, the outbox relay, the gauges and /ready with a small pool. On SQLite (the local embedded
profile) everything goes through the engine (app/storage/repository.py). Every PostgreSQL connection
shares one configuration (app/storage/postgres_connection.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from app.settings import Settings
from app.storage import repository
from app.storage.database import create_engine
from app.storage.postgres_reader import PostgresReader, SeriesKey
from app.storage.postgres_writer import PostgresGroupWriter
from app.storage.repository import ScoredReading, StoredResult

ENGINE_POOL_SIZE = 4  # the engine's pool on PostgreSQL when the hot paths have their own pools
POSTGRES_WRITERS = 2  # group commits in flight at once on PostgreSQL (SQLite takes one writer)


class QueryBackend(Protocol):
    """What the query service reads through."""

    async def readings(self, *, tag: str | None, device_id: str | None, since: datetime | None,
                       until: datetime | None, limit: int, sample_every: int = 1) -> list[dict]: ...

    async def tag_stats(self, *, device_id: str | None) -> list[dict]: ...

    async def anomaly_counts(self, *, tag: str | None, since: datetime | None) -> dict[str, int]: ...


class EngineQueries:
    """The queries through SQLAlchemy (SQLite, and the read-API Lambda)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def readings(self, *, tag: str | None, device_id: str | None, since: datetime | None,
                       until: datetime | None, limit: int, sample_every: int = 1) -> list[dict]:
        return await repository.query_readings(
            self._engine, tag=tag, device_id=device_id, since=since, until=until, limit=limit,
            sample_every=sample_every,
        )

    async def tag_stats(self, *, device_id: str | None) -> list[dict]:
        return await repository.tag_stats(self._engine, device_id=device_id)

    async def anomaly_counts(self, *, tag: str | None, since: datetime | None) -> dict[str, int]:
        return await repository.anomaly_counts(self._engine, tag=tag, since=since)


@dataclass(eq=False)
class Storage:
    """The backends of one process; `close()` releases every pool."""

    engine: AsyncEngine
    reads: QueryBackend
    writers: int  # group commits that may run at once
    _group_writer: PostgresGroupWriter | None = None
    _reader: PostgresReader | None = None

    async def store_group(self, batch: Sequence[ScoredReading]) -> list[StoredResult]:
        """One group commit: the readings and their outbox rows in one transaction."""
        if not self.writers:
            raise RuntimeError("read-only storage: the read API must not write")
        if self._group_writer is not None:
            return await self._group_writer.store(batch)
        async with self.engine.begin() as connection:
            return await repository.store(connection, batch)

    async def history(self, keys: Sequence[SeriesKey], limit: int) -> dict[SeriesKey, list[float]]:
        """Each series' last `limit` stored values, oldest first (anomaly windows of new series)."""
        if self._reader is not None:
            return await self._reader.recent_values_many(keys, limit)
        return await repository.recent_values_many(self.engine, keys, limit)

    async def close(self) -> None:
        if self._group_writer is not None:
            await self._group_writer.close()
        if self._reader is not None:
            await self._reader.close()
        await self.engine.dispose()


def open_storage(settings: Settings) -> Storage:
    """The ingestion service's backends (pools open on first use: the database may be down now)."""
    if not settings.is_postgres:
        engine = create_engine(settings)
        return Storage(engine=engine, reads=EngineQueries(engine), writers=1)
    reader = PostgresReader(settings, connections=settings.db_pool_size)
    return Storage(engine=create_engine(settings, pool_size=ENGINE_POOL_SIZE), reads=reader,
                   writers=POSTGRES_WRITERS,
                   _group_writer=PostgresGroupWriter(settings, connections=POSTGRES_WRITERS), _reader=reader)


def open_read_only_storage(settings: Settings) -> Storage:
    """The read API's backend: the engine alone, whatever the database (mangum runs the lifespan per
    invocation, so a Lambda holds no pool between requests). It has no writer: it must not write."""
    engine = create_engine(settings)
    return Storage(engine=engine, reads=EngineQueries(engine), writers=0)
