"""The PostgreSQL read path (asyncpg, per-series aggregates kept by a trigger) answers exactly what the
SQLAlchemy queries over `readings` answer, on the same data; history loads many series at once."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import random
from datetime import UTC, datetime, timedelta

import asyncpg

from app.services.queries import QueryService
from app.settings import Settings
from app.storage.backends import EngineQueries
from app.storage.database import MIGRATIONS, create_engine
from app.storage.postgres_reader import PostgresReader
from app.storage.postgres_writer import PostgresGroupWriter
from app.storage.repository import ScoredReading

START = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = ("fermenter_temp", "fermenter_ph", "agitator_rpm")


def readings(count: int, seed: int = 3) -> list[ScoredReading]:
    rng = random.Random(seed)
    return [
        ScoredReading(f"dev-{rng.randrange(6)}", rng.choice(TAGS), START + timedelta(seconds=i),
                      round(rng.uniform(30, 50), 3), rng.random() < 0.1, None)
        for i in range(count)
    ]


def load_migration(name: str):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), MIGRATIONS / "versions" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def close(a: dict | list, b: dict | list) -> bool:
    """Equal, floats compared to 1e-9 relative (sums in a different order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def test_reader_answers_like_the_sqlalchemy_queries(postgres_url: str) -> None:
    settings = Settings(database_url=postgres_url)

    async def scenario() -> None:
        writer = PostgresGroupWriter(settings, connections=2)
        reader = PostgresReader(settings, connections=4)
        engine = create_engine(settings)
        reference = EngineQueries(engine)
        try:
            batch = readings(400)
            # Several groups, concurrently (as group commit does), plus a group of duplicates only.
            await asyncio.gather(*(writer.store(batch[i:i + 50]) for i in range(0, 400, 50)))
            await writer.store(batch[:30])
            for device_id in (None, "dev-1", "nobody"):
                assert close(await reader.tag_stats(device_id=device_id),
                             await reference.tag_stats(device_id=device_id))
            for tag in (None, "fermenter_ph", "unknown"):
                for since in (None, START + timedelta(seconds=200)):
                    assert await reader.anomaly_counts(tag=tag, since=since) == \
                        await reference.anomaly_counts(tag=tag, since=since)
            for query in ({"tag": None, "device_id": None, "since": None, "until": None, "limit": 1000},
                          {"tag": "fermenter_temp", "device_id": "dev-2", "since": None, "until": None, "limit": 7},
                          {"tag": None, "device_id": "dev-3", "since": START + timedelta(seconds=10),
                           "until": START + timedelta(seconds=300), "limit": 50}):
                assert await reader.readings(**query) == await reference.readings(**query)
        finally:
            await writer.close()
            await reader.close()
            await engine.dispose()

    asyncio.run(scenario())


def test_identical_reads_in_flight_still_see_every_reading_committed_before_them(postgres_url: str) -> None:
    """Requests for one series keep arriving while earlier identical ones are being answered: each answer
    holds the reading committed just before its request (shared reads never join a query already started)."""
    settings = Settings(database_url=postgres_url)

    async def scenario() -> list[tuple[int, float]]:
        writer = PostgresGroupWriter(settings, connections=1)
        reader = PostgresReader(settings, connections=2)
        service = QueryService(reader)

        async def read() -> list[dict]:
            return await service.readings(tag="fermenter_temp", device_id="dev-fresh", since=None, until=None,
                                          limit=1)

        async def keep_reading() -> None:  # so that a query for the series is always in flight
            while True:
                await asyncio.gather(*(read() for _ in range(3)))

        background = asyncio.ensure_future(keep_reading())
        try:
            requests: list[tuple[int, asyncio.Future]] = []
            for number in range(40):
                await writer.store([ScoredReading("dev-fresh", "fermenter_temp", START + timedelta(seconds=number),
                                                  float(number), False, None)])  # committed
                requests += [(number, asyncio.ensure_future(read())) for _ in range(5)]
                await asyncio.sleep(0)
            return [(number, (await request)[0]["value"]) for number, request in requests]
        finally:
            background.cancel()
            await asyncio.gather(background, return_exceptions=True)
            await writer.close()
            await reader.close()

    answers = asyncio.run(scenario())
    stale = [(number, newest) for number, newest in answers if newest < number]
    assert not stale, f"answers older than the request: {stale[:5]}"


def test_history_of_many_series_in_one_call(postgres_url: str) -> None:
    settings = Settings(database_url=postgres_url)

    async def scenario() -> dict:
        writer = PostgresGroupWriter(settings, connections=1)
        reader = PostgresReader(settings, connections=1)
        try:
            await writer.store([ScoredReading("a", "fermenter_temp", START + timedelta(seconds=i), float(i), False, None)
                                for i in range(10)])
            await writer.store([ScoredReading("b", "fermenter_ph", START + timedelta(seconds=i), 7.0 + i / 10, False,
                                              None) for i in range(3)])
            return await reader.recent_values_many(
                [("a", "fermenter_temp"), ("new", "fermenter_temp"), ("b", "fermenter_ph"), ("a", "fermenter_ph")], 4
            )
        finally:
            await writer.close()
            await reader.close()

    # The last `limit` values, oldest first; series without stored values are absent.
    assert asyncio.run(scenario()) == {("a", "fermenter_temp"): [6.0, 7.0, 8.0, 9.0],
                                       ("b", "fermenter_ph"): [7.0, 7.1, 7.2]}


def test_the_aggregates_are_backfilled_when_the_migration_runs_on_existing_readings(postgres_url: str) -> None:
    """0002 on a database that already holds readings (an upgrade): the statistics include them."""
    settings = Settings(database_url=postgres_url)

    async def scenario() -> tuple[list[dict], list[dict]]:
        writer = PostgresGroupWriter(settings, connections=1)
        reader = PostgresReader(settings, connections=1)
        engine = create_engine(settings)
        url = engine.url
        connection = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
        try:
            await writer.store(readings(100, seed=5))
            # Back to 0001's schema with the readings kept, then the upgrade's statements again.
            await connection.execute("DROP TRIGGER readings_series_stats ON readings; "
                                     "DROP FUNCTION series_stats_add(); DROP TABLE series_stats")
            migration = load_migration("0002_series_stats.py")
            for statement in (migration.CREATE_TABLE, migration.CREATE_FUNCTION, migration.CREATE_TRIGGER,
                              migration.BACKFILL):
                await connection.execute(statement)
            await writer.store(readings(50, seed=6))
            return await reader.tag_stats(device_id=None), await EngineQueries(engine).tag_stats(device_id=None)
        finally:
            await connection.close()
            await writer.close()
            await reader.close()
            await engine.dispose()

    stats, reference = asyncio.run(scenario())
    assert close(stats, reference)
