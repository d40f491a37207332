"""Group commit on real databases (SQLite through SQLAlchemy, PostgreSQL through the asyncpg
writer): concurrent requests share transactions, each caller gets its own results only after the
commit, duplicates are recognised, and a failed transaction fails every caller in it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.readings import DEVICE_METADATA, DeviceMetadata
from app.settings import Settings
from app.storage import repository
from app.storage.database import create_engine, migrate
from app.storage.group_commit import GroupCommitter
from app.storage.models import outbox, readings
from app.storage.postgres_writer import PostgresGroupWriter
from app.storage.repository import ScoredReading

START = datetime(2026, 1, 1, tzinfo=UTC)


def reading(device: str, second: int) -> ScoredReading:
    return ScoredReading(device, "fermenter_ph", START + timedelta(seconds=second), 7.0, False, None)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/group.db"
    return request.getfixturevalue("postgres_url")


def group_store(engine, database_url: str):
    """The production write path for the database: (store function, close function)."""
    if database_url.startswith("postgresql"):
        writer = PostgresGroupWriter(Settings(database_url=database_url), connections=2)
        return writer.store, writer.close

    async def store_group(batch):
        async with engine.begin() as connection:
            return await repository.store(connection, batch)

    async def nothing() -> None:
        return None

    return store_group, nothing


def test_concurrent_submissions_share_transactions(database_url: str) -> None:
    async def scenario() -> tuple[int, list, int, int]:
        engine = create_engine(Settings(database_url=database_url))
        await migrate(engine)
        transactions = 0
        store, close = group_store(engine, database_url)

        async def counted(batch):
            nonlocal transactions
            transactions += 1
            return await store(batch)

        sizes: list[int] = []
        waits: list[float] = []
        committer = GroupCommitter(counted, max_rows=10_000, writers=1,
                                   on_commit=lambda rows, _ms: sizes.append(rows), on_wait=waits.append)
        committer.start()
        requests = [[reading(f"d{r}", s) for s in range(5)] for r in range(200)]
        results = await asyncio.gather(*(committer.submit(batch) for batch in requests))
        await committer.close()
        # Every group reports its size after the commit and its oldest request's wait before it.
        assert sum(sizes) == 1000 and len(sizes) == len(waits) == transactions
        assert all(wait >= 0 for wait in waits) and max(waits) > 0
        await close()
        async with engine.connect() as connection:
            stored = (await connection.execute(select(func.count()).select_from(readings))).scalar_one()
            queued = (await connection.execute(select(func.count()).select_from(outbox))).scalar_one()
        await engine.dispose()
        return transactions, results, stored, queued

    transactions, results, stored, queued = asyncio.run(scenario())
    assert stored == queued == 1000
    assert transactions < 200 / 4, f"{transactions} transactions for 200 concurrent requests"
    assert all(len(r) == 5 and not any(x.duplicate for x in r) for r in results)
    assert len({x.id for r in results for x in r}) == 1000


def test_a_failed_transaction_fails_every_caller_and_stores_nothing(tmp_path: Path) -> None:
    # The committer's semantics; a real PostgreSQL outage is covered in test_dead_letter.py.
    database_url = f"sqlite+aiosqlite:///{tmp_path}/failed.db"

    async def scenario():
        engine = create_engine(Settings(database_url=database_url))
        await migrate(engine)

        async def store_then_fail(batch):
            async with engine.begin() as connection:
                await repository.store(connection, batch)
                raise ConnectionError("connection lost before commit")

        committer = GroupCommitter(store_then_fail, max_rows=10_000)
        committer.start()
        outcomes = await asyncio.gather(*(committer.submit([reading("d", i)]) for i in range(20)),
                                        return_exceptions=True)
        await committer.close()
        async with engine.connect() as connection:
            stored = (await connection.execute(select(func.count()).select_from(readings))).scalar_one()
        await engine.dispose()
        return outcomes, stored

    outcomes, stored = asyncio.run(scenario())
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert stored == 0


def test_close_flushes_what_is_queued(database_url: str) -> None:
    async def scenario():
        engine = create_engine(Settings(database_url=database_url))
        await migrate(engine)

        store, close = group_store(engine, database_url)
        committer = GroupCommitter(store, max_rows=10_000)
        committer.start()
        pending = [asyncio.ensure_future(committer.submit([reading("d", i)])) for i in range(50)]
        await asyncio.sleep(0)
        await committer.close()
        results = await asyncio.gather(*pending)
        await close()
        await engine.dispose()
        return results

    assert len(asyncio.run(scenario())) == 50


def test_duplicates_within_and_across_groups_map_to_the_first_stored_id(database_url: str) -> None:
    async def scenario():
        engine = create_engine(Settings(database_url=database_url))
        await migrate(engine)
        store, close = group_store(engine, database_url)
        first = await store([reading("d", 1), reading("d", 2)])
        second = await store([reading("d", 2), reading("d", 3), reading("d", 3), reading("e", 1)])
        await close()
        await engine.dispose()
        return first, second

    first, second = asyncio.run(scenario())
    assert [r.duplicate for r in first] == [False, False]
    assert [r.duplicate for r in second] == [True, False, True, False]
    assert second[0].id == first[1].id and second[2].id == second[1].id


def test_device_metadata_is_stored_with_its_reading_and_plain_readings_get_nulls(database_url: str) -> None:
    """Groups of plain readings, and groups mixing plain readings with device records' readings."""
    tracker = DeviceMetadata(device_type="tracker", latitude=52.5, longitude=13.4, status="ok",
                             firmware_version="1.2.3")

    async def scenario():
        engine = create_engine(Settings(database_url=database_url))
        await migrate(engine)
        store, close = group_store(engine, database_url)
        await store([reading("plain", 1), reading("plain", 2)])
        await store([reading("plain", 3), ScoredReading("t-1", "temperature", START, 21.5, False, None, tracker),
                     reading("plain", 4)])
        await close()
        columns = [readings.c.device_id, readings.c.ts, *(readings.c[name] for name in DEVICE_METADATA)]
        async with engine.connect() as connection:
            rows = (await connection.execute(select(*columns).order_by(readings.c.device_id, readings.c.ts))).all()
        await engine.dispose()
        return [(row[0], tuple(row[2:])) for row in rows]

    nothing = (None,) * len(DEVICE_METADATA)
    assert asyncio.run(scenario()) == [*[("plain", nothing)] * 4, ("t-1", ("tracker", 52.5, 13.4, "ok", "1.2.3"))]
