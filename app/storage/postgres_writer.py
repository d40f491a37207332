"""The group-commit write path on PostgreSQL, straight on asyncpg.

One statement per group: the inputs are unnested WITH ORDINALITY, inserted (ON CONFLICT DO
NOTHING), chained to the outbox insert, and joined back so the database answers "input #k got id
N" — no per-row matching in Python. The statement runs on its own, without BEGIN/COMMIT around it: a
single statement is its own transaction in PostgreSQL (both inserts or neither), committed before the
server reports the statement complete, so asyncpg's `fetch` returns only after the commit (and raises
if it failed) with one round trip per group instead of three. Writers use their own small asyncpg pool (no
SQLAlchemy checkout, pre-ping or greenlet hop per transaction), with the connection configuration every
pool shares (app/storage/postgres_connection.py, server-side `statement_timeout` included).
"""

from __future__ import annotations

from collections.abc import Sequence

from app.readings import DEVICE_METADATA
from app.settings import Settings
from app.storage.postgres_connection import LazyPool, asyncpg_connect_args
from app.storage.repository import ScoredReading, StoredResult

STORE_GROUP = """
WITH incoming AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::float8[], $5::boolean[], $6::float8[],
                         $7::text[], $8::float8[], $9::float8[], $10::text[], $11::text[])
        WITH ORDINALITY AS r(device_id, tag, ts, value, is_anomaly, z_score,
                             device_type, latitude, longitude, status, firmware_version, ord)
), inserted AS (
    INSERT INTO readings (device_id, tag, ts, value, is_anomaly, z_score,
                          device_type, latitude, longitude, status, firmware_version)
    SELECT device_id, tag, ts, value, is_anomaly, z_score,
           device_type, latitude, longitude, status, firmware_version FROM incoming ORDER BY ord
    ON CONFLICT ON CONSTRAINT uq_readings_device_tag_ts DO NOTHING
    RETURNING id, device_id, tag, ts, is_anomaly
), queued AS (
    INSERT INTO outbox (reading_id) SELECT id FROM inserted
)
SELECT DISTINCT ON (inserted.id) incoming.ord, inserted.id, inserted.is_anomaly
FROM inserted JOIN incoming USING (device_id, tag, ts)
ORDER BY inserted.id, incoming.ord
"""

EXISTING = """
SELECT r.id, r.is_anomaly, k.ord
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS k(device_id, tag, ts, ord)
JOIN readings r USING (device_id, tag, ts)
"""


class PostgresGroupWriter:
    """Group commits on one asyncpg pool (the connection configuration every pool shares)."""

    def __init__(self, settings: Settings, *, connections: int) -> None:
        self._pool = LazyPool(asyncpg_connect_args(settings, "sensor-ingest-writer"), connections=connections)

    async def store(self, batch: Sequence[ScoredReading]) -> list[StoredResult]:
        """Store `batch` and its outbox rows in one transaction; one result per input, in order."""
        pool = await self._pool.get()
        async with pool.acquire() as connection:
            # One statement, one implicit transaction: returns after its COMMIT (see the module doc).
            rows = await connection.fetch(
                STORE_GROUP,
                [r.device_id for r in batch], [r.tag for r in batch], [r.ts for r in batch],
                [r.value for r in batch], [r.is_anomaly for r in batch], [r.z_score for r in batch],
                *_metadata_columns(batch),
            )
            results: list[StoredResult | None] = [None] * len(batch)
            for ordinal, reading_id, is_anomaly in rows:
                results[ordinal - 1] = StoredResult(reading_id, is_anomaly, duplicate=False)
            missing = [index for index, result in enumerate(results) if result is None]
            if missing:
                # Already stored earlier, or repeated within this group: committed rows, read afterwards
                # (readings are never updated or deleted, so a separate read sees what the insert saw).
                for reading_id, is_anomaly, ordinal in await connection.fetch(
                    EXISTING, [batch[i].device_id for i in missing], [batch[i].tag for i in missing],
                    [batch[i].ts for i in missing],
                ):
                    results[missing[ordinal - 1]] = StoredResult(reading_id, is_anomaly, duplicate=True)
        return results  # type: ignore[return-value]

    async def close(self) -> None:
        await self._pool.close()


def _metadata_columns(batch: Sequence[ScoredReading]) -> list[list]:
    """The DEVICE_METADATA columns as arrays. A group of plain readings sends empty arrays: a
    multi-argument unnest() pads the shorter arrays with NULLs, so the database fills the same NULLs
    without the client encoding five arrays of None for every group."""
    if all(r.metadata is None for r in batch):
        return [[] for _ in DEVICE_METADATA]
    return [list(column) for column in zip(*(r.metadata_values() for r in batch), strict=True)]
