"""The read side on PostgreSQL, straight on asyncpg: the query endpoints and anomaly-window history.

Like the group writer (app.storage.postgres_writer) it uses its own asyncpg pool (with the connection
configuration every pool shares, app.storage.postgres_connection) instead of the SQLAlchemy engine: no
pre-ping `SELECT 1` and no begin/rollback per checkout, no ORM row objects, and a pool that keeps its
connections open (no overflow connections opened and closed under load).
asyncpg prepares each statement once per connection and reuses it. Per-tag statistics and all-time
anomaly counts come from `series_stats` (per-series aggregates the database maintains on insert,
migration 0002), not from a scan of `readings`.

A connection found dead (the database restarted or failed over since it was last used) is dropped by
the pool; reads are idempotent, so such a read is retried once on a fresh connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from app.readings import DEVICE_METADATA
from app.settings import Settings
from app.storage.postgres_connection import LazyPool, asyncpg_connect_args
from app.storage.repository import SAMPLE_HASH_FACTOR, SAMPLE_HASH_MODULUS
from app.storage.unavailable import CONNECTION_FAILURES

_METADATA_COLUMNS = ", ".join(DEVICE_METADATA)

SeriesKey = tuple[str, str]  # (device_id, tag)

# The last `limit` values of many series in one statement: one backward scan of the unique index
# (device_id, tag, ts) per series.
RECENT_VALUES_MANY = """
SELECT k.ord, v.value
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(device_id, tag, ord)
CROSS JOIN LATERAL (
    SELECT r.ts, r.value FROM readings r
    WHERE r.device_id = k.device_id AND r.tag = k.tag
    ORDER BY r.ts DESC
    LIMIT $3
) v
ORDER BY k.ord, v.ts
"""

# Statistics from the per-series aggregates (migration 0002 keeps them current): no scan of `readings`.
TAG_STATS = """
SELECT tag, sum(count) AS count, min(min) AS min, max(max) AS max, sum(sum) / sum(count) AS mean,
       sum(anomalies) AS anomalies, min(first_ts) AS first, max(last_ts) AS last, count(*) AS devices
FROM series_stats {where}
GROUP BY tag
ORDER BY tag
"""
ANOMALY_COUNTS = """
SELECT tag, sum(anomalies) FROM series_stats {where} GROUP BY tag HAVING sum(anomalies) > 0
"""


class PostgresReader:
    """The query endpoints' and the anomaly windows' reads, on one asyncpg pool."""

    def __init__(self, settings: Settings, *, connections: int) -> None:
        self._pool = LazyPool(asyncpg_connect_args(settings, "sensor-ingest-reader"), connections=connections)

    async def recent_values_many(self, keys: Sequence[SeriesKey], limit: int) -> dict[SeriesKey, list[float]]:
        """Each series' last `limit` values, oldest first; series without stored values are absent."""
        if not keys:
            return {}
        rows = await self._fetch(RECENT_VALUES_MANY, [k[0] for k in keys], [k[1] for k in keys], limit)
        found: dict[SeriesKey, list[float]] = {}
        for ordinal, value in rows:
            found.setdefault(keys[ordinal - 1], []).append(value)
        return found

    async def readings(self, *, tag: str | None, device_id: str | None, since: datetime | None,
                       until: datetime | None, limit: int, sample_every: int = 1) -> list[dict]:
        """Newest first (the same answer as repository.query_readings, thinning included)."""
        conditions, arguments = [], []
        sample = (f"((id * {SAMPLE_HASH_FACTOR}) % {SAMPLE_HASH_MODULUS} % ${{}} = 0 OR is_anomaly)"
                  if sample_every > 1 else None)
        for clause, value in (("tag = ${}", tag), ("device_id = ${}", device_id), ("ts >= ${}", since),
                              ("ts < ${}", until), (sample, sample_every if sample else None)):
            if value is not None:
                arguments.append(value)
                conditions.append(clause.format(len(arguments)))
        arguments.append(limit)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        # S608: only the fixed clauses above are joined in; every value is a bind parameter.
        statement = (f"SELECT id, device_id, tag, ts, value, is_anomaly, z_score, {_METADATA_COLUMNS} "  # noqa: S608
                     f"FROM readings {where} ORDER BY ts DESC, id DESC LIMIT ${len(arguments)}")
        return [
            {"id": r[0], "device_id": r[1], "tag": r[2], "timestamp": r[3], "value": r[4], "is_anomaly": r[5],
             "z_score": r[6], **dict(zip(DEVICE_METADATA, r[7:], strict=True))}
            for r in await self._fetch(statement, *arguments)
        ]

    async def tag_stats(self, *, device_id: str | None) -> list[dict]:
        if device_id is None:
            rows = await self._fetch(TAG_STATS.format(where=""))
        else:
            rows = await self._fetch(TAG_STATS.format(where="WHERE device_id = $1"), device_id)
        return [
            {"tag": r["tag"], "count": int(r["count"]), "min": r["min"], "max": r["max"], "mean": float(r["mean"]),
             "anomalies": int(r["anomalies"] or 0), "devices": r["devices"],
             "first_timestamp": r["first"], "last_timestamp": r["last"]}
            for r in rows
        ]

    async def anomaly_counts(self, *, tag: str | None, since: datetime | None) -> dict[str, int]:
        if since is None:  # all time: from the per-series aggregates
            if tag is None:
                rows = await self._fetch(ANOMALY_COUNTS.format(where=""))
            else:
                rows = await self._fetch(ANOMALY_COUNTS.format(where="WHERE tag = $1"), tag)
            return {r[0]: int(r[1]) for r in rows}
        conditions, arguments = ["is_anomaly", "ts >= $1"], [since]
        if tag is not None:
            arguments.append(tag)
            conditions.append("tag = $2")
        statement = f"SELECT tag, count(*) FROM readings WHERE {' AND '.join(conditions)} GROUP BY tag"  # noqa: S608 - fixed clauses, bound values
        return {r[0]: r[1] for r in await self._fetch(statement, *arguments)}

    async def _fetch(self, statement: str, *arguments: Any) -> list[asyncpg.Record]:
        pool = await self._pool.get()
        try:
            return await pool.fetch(statement, *arguments)
        except CONNECTION_FAILURES:
            return await pool.fetch(statement, *arguments)

    async def close(self) -> None:
        await self._pool.close()
