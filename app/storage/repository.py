"""Reads and writes of `readings` and `outbox` through SQLAlchemy.

`store` writes a group of readings and their outbox rows in ONE transaction on SQLite and
reports, per input, the stored id or the id of the reading it duplicates; PostgreSQL's group
writes take the one-statement asyncpg path in app.storage.postgres_writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, literal_column, or_, select, tuple_
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.readings import DEVICE_METADATA, DeviceMetadata
from app.storage.models import outbox, readings

# Keep statement parameters under SQLite's 32766 limit (11 columns per row).
_SQLITE_CHUNK = 2900


# Not frozen, like NewReading (app/readings.py): created for every reading.
@dataclass(slots=True)
class ScoredReading:
    """A validated reading with its anomaly verdict: what gets stored."""

    device_id: str
    tag: str
    ts: datetime
    value: float
    is_anomaly: bool
    z_score: float | None
    metadata: DeviceMetadata | None = None

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.device_id, self.tag, self.ts)

    def metadata_values(self) -> tuple:
        """The DEVICE_METADATA columns' values (all None for a plain reading)."""
        meta = self.metadata or _NO_METADATA
        return tuple(getattr(meta, name) for name in DEVICE_METADATA)


_NO_METADATA = DeviceMetadata()


# Not frozen, like NewReading (app/readings.py): created for every reading.
@dataclass(slots=True)
class StoredResult:
    id: int
    is_anomaly: bool
    duplicate: bool


async def store(connection: AsyncConnection, batch: Sequence[ScoredReading]) -> list[StoredResult]:
    """SQLite: insert `batch` (+ outbox rows) in the caller's transaction; one result per input, in
    order. (PostgreSQL takes the one-statement path in app.storage.postgres_writer.)"""
    rows = []
    for start in range(0, len(batch), _SQLITE_CHUNK):
        chunk = batch[start : start + _SQLITE_CHUNK]
        statement = (
            sqlite.insert(readings)
            .values([_row(r) for r in chunk])
            .on_conflict_do_nothing(index_elements=["device_id", "tag", "ts"])
            .returning(readings.c.id, readings.c.device_id, readings.c.tag, readings.c.ts, readings.c.is_anomaly)
        )
        inserted = (await connection.execute(statement)).all()
        if inserted:
            await connection.execute(outbox.insert(), [{"reading_id": row.id} for row in inserted])
        rows += inserted
    return await _match(connection, batch, rows)


async def _match(connection: AsyncConnection, batch: Sequence[ScoredReading], inserted) -> list[StoredResult]:
    """Map inserted rows back to the inputs; inputs not inserted duplicate an existing reading
    (or an earlier input of the same batch)."""
    fresh = {(row.device_id, row.tag, _utc(row.ts)): row for row in inserted}
    results: list[StoredResult | None] = []
    claimed: set[tuple[str, str, datetime]] = set()
    missing: list[int] = []
    for index, reading in enumerate(batch):
        row = fresh.get(reading.key)
        if row is not None and reading.key not in claimed:
            claimed.add(reading.key)
            results.append(StoredResult(row.id, row.is_anomaly, duplicate=False))
        else:
            results.append(None)
            missing.append(index)
    if missing:
        existing = await _existing(connection, [batch[i].key for i in missing])
        for index in missing:
            row = existing[batch[index].key]
            results[index] = StoredResult(row.id, row.is_anomaly, duplicate=True)
    return results  # type: ignore[return-value]


async def _existing(connection: AsyncConnection, keys: list[tuple[str, str, datetime]]) -> dict:
    found = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), 1000):
        chunk = unique[start : start + 1000]
        statement = select(readings.c.id, readings.c.device_id, readings.c.tag, readings.c.ts,
                           readings.c.is_anomaly).where(
            tuple_(readings.c.device_id, readings.c.tag, readings.c.ts).in_(chunk)
        )
        for row in (await connection.execute(statement)).all():
            found[(row.device_id, row.tag, _utc(row.ts))] = row
    return found


def _row(reading: ScoredReading) -> dict:
    return {
        "device_id": reading.device_id, "tag": reading.tag, "ts": reading.ts, "value": reading.value,
        "is_anomaly": reading.is_anomaly, "z_score": reading.z_score,
        **dict(zip(DEVICE_METADATA, reading.metadata_values(), strict=True)),
    }


def _utc(value: datetime) -> datetime:
    """SQLite hands timestamps back naive; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def recent_values(engine: AsyncEngine, device_id: str, tag: str, limit: int) -> list[float]:
    """The series' last `limit` values, oldest first (to rebuild an anomaly window)."""
    statement = (
        select(readings.c.value)
        .where(readings.c.device_id == device_id, readings.c.tag == tag)
        .order_by(readings.c.ts.desc())
        .limit(limit)
    )
    async with engine.connect() as connection:
        values = (await connection.execute(statement)).scalars().all()
    return list(reversed(values))


async def recent_values_many(
    engine: AsyncEngine, keys: Sequence[tuple[str, str]], limit: int
) -> dict[tuple[str, str], list[float]]:
    """recent_values of several series on one connection; series without stored values are absent."""
    found = {}
    async with engine.connect() as connection:
        for device_id, tag in keys:
            statement = (
                select(readings.c.value)
                .where(readings.c.device_id == device_id, readings.c.tag == tag)
                .order_by(readings.c.ts.desc())
                .limit(limit)
            )
            values = (await connection.execute(statement)).scalars().all()
            if values:
                found[(device_id, tag)] = list(reversed(values))
    return found


# Thinning for long dashboard ranges: keep a reading when a hash of its id falls in 1 of `sample_every`
# buckets (ids of different tags and devices interleave, so a plain `id % n` would alias onto one tag),
# and every anomaly. Knuth's multiplicative hash on the low 16 bits; both SQLite and PostgreSQL compute it.
SAMPLE_HASH_FACTOR = 40503
SAMPLE_HASH_MODULUS = 65536


async def query_readings(
    engine: AsyncEngine, *, tag: str | None, device_id: str | None, since: datetime | None,
    until: datetime | None, limit: int, sample_every: int = 1,
) -> list[dict]:
    """Newest first."""
    conditions = []
    if sample_every > 1:
        hashed = (readings.c.id * SAMPLE_HASH_FACTOR) % SAMPLE_HASH_MODULUS
        conditions.append(or_(hashed % sample_every == 0, readings.c.is_anomaly.is_(True)))
    if tag is not None:
        conditions.append(readings.c.tag == tag)
    if device_id is not None:
        conditions.append(readings.c.device_id == device_id)
    if since is not None:
        conditions.append(readings.c.ts >= since)
    if until is not None:
        conditions.append(readings.c.ts < until)
    statement = (
        select(readings.c.id, readings.c.device_id, readings.c.tag, readings.c.ts, readings.c.value,
               readings.c.is_anomaly, readings.c.z_score, *(readings.c[name] for name in DEVICE_METADATA))
        .where(*conditions)
        .order_by(readings.c.ts.desc(), readings.c.id.desc())
        .limit(limit)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return [
        {"id": r.id, "device_id": r.device_id, "tag": r.tag, "timestamp": _utc(r.ts), "value": r.value,
         "is_anomaly": r.is_anomaly, "z_score": r.z_score, **{name: r._mapping[name] for name in DEVICE_METADATA}}
        for r in rows
    ]


async def tag_stats(engine: AsyncEngine, *, device_id: str | None) -> list[dict]:
    conditions = [readings.c.device_id == device_id] if device_id is not None else []
    anomalies = func.count().filter(readings.c.is_anomaly.is_(True))
    statement = (
        select(
            readings.c.tag,
            func.count().label("count"),
            func.min(readings.c.value).label("min"),
            func.max(readings.c.value).label("max"),
            func.avg(readings.c.value).label("mean"),
            anomalies.label("anomalies"),
            func.min(readings.c.ts).label("first"),
            func.max(readings.c.ts).label("last"),
            func.count(func.distinct(readings.c.device_id)).label("devices"),
        )
        .where(*conditions)
        .group_by(readings.c.tag)
        .order_by(readings.c.tag)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return [
        {"tag": r.tag, "count": r.count, "min": r.min, "max": r.max, "mean": float(r.mean),
         "anomalies": int(r.anomalies or 0), "devices": r.devices,
         "first_timestamp": _utc(r.first), "last_timestamp": _utc(r.last)}
        for r in rows
    ]


async def anomaly_counts(engine: AsyncEngine, *, tag: str | None, since: datetime | None) -> dict[str, int]:
    conditions = [readings.c.is_anomaly.is_(True)]
    if tag is not None:
        conditions.append(readings.c.tag == tag)
    if since is not None:
        conditions.append(readings.c.ts >= since)
    statement = (
        select(readings.c.tag, func.count().label("count"))
        .where(*conditions)
        .group_by(readings.c.tag)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return {r.tag: r.count for r in rows}


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(select(literal_column("1")))


async def outbox_backlog(engine: AsyncEngine) -> tuple[int, float]:
    """(rows waiting for Kafka, age in seconds of the oldest)."""
    statement = select(func.count(), func.min(outbox.c.created_at))
    async with engine.connect() as connection:
        count, oldest = (await connection.execute(statement)).one()
    if not count or oldest is None:
        return 0, 0.0
    return count, max(0.0, (datetime.now(UTC) - _utc(oldest)).total_seconds())
