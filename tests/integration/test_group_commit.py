"""Group commit on real databases: concurrent requests share transactions, each caller gets its
own results only after the commit, and a failed transaction fails every caller in it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.settings import Settings
from app.storage import repository
from app.storage.database import create_engine, migrate
from app.storage.group_commit import GroupCommitter
from app.storage.models import outbox, readings
from app.storage.repository import ScoredReading

START = datetime(2026, 1, 1, tzinfo=UTC)


def reading(device: str, second: int) -> ScoredReading:
    return ScoredReading(device, "fermenter_ph", START + timedelta(seconds=second), 7.0, False, None)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/group.db"
    return request.getfixturevalue("postgres_url")


def test_concurrent_submissions_share_transactions(database_url: str) -> None:
    async def scenario() -> tuple[int, list, int, int]:
        engine = create_engine(Settings(database_url=database_url))
        await migrate(engine)
        transactions = 0

        async def store_group(batch):
            nonlocal transactions
            transactions += 1
            async with engine.begin() as connection:
                return await repository.store(connection, batch)

        committer = GroupCommitter(store_group, max_rows=10_000, writers=1)
        committer.start()
        requests = [[reading(f"d{r}", s) for s in range(5)] for r in range(200)]
        results = await asyncio.gather(*(committer.submit(batch) for batch in requests))
        await committer.close()
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


def test_a_failed_transaction_fails_every_caller_and_stores_nothing(database_url: str) -> None:
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

        async def store_group(batch):
            async with engine.begin() as connection:
                return await repository.store(connection, batch)

        committer = GroupCommitter(store_group, max_rows=10_000)
        committer.start()
        pending = [asyncio.ensure_future(committer.submit([reading("d", i)])) for i in range(50)]
        await asyncio.sleep(0)
        await committer.close()
        results = await asyncio.gather(*pending)
        await engine.dispose()
        return results

    assert len(asyncio.run(scenario())) == 50
