"""The aggregates' short-lived cache: never staler than its bound, one query per parameter set at a time,
failures not cached, a departing caller does not cancel the query others wait for."""

from __future__ import annotations

import asyncio

import pytest

from app.services.queries import QueryService, TtlCache
from tests.support.clock import ManualClock


class Counter:
    """A stand-in query: returns how many times it ran; optionally blocks until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.release: asyncio.Event | None = None

    async def __call__(self) -> int:
        self.calls += 1
        call = self.calls
        if self.release is not None:
            await self.release.wait()
        return call


def test_an_answer_is_reused_only_within_the_bound_counted_from_the_query_start() -> None:
    clock, query = ManualClock(100.0), Counter()
    cache = TtlCache(1.0, clock=clock)

    async def scenario() -> list[int]:
        answers = [await cache.get("k", query)]
        clock.now += 0.999
        answers.append(await cache.get("k", query))  # still within 1 s of the query's start
        clock.now += 0.001
        answers.append(await cache.get("k", query))  # 1 s old: recomputed
        return answers

    assert asyncio.run(scenario()) == [1, 1, 2]


def test_parameter_sets_are_cached_separately() -> None:
    clock, query = ManualClock(100.0), Counter()
    cache = TtlCache(1.0, clock=clock)

    async def scenario() -> list[int]:
        return [await cache.get("a", query), await cache.get("b", query), await cache.get("a", query)]

    assert asyncio.run(scenario()) == [1, 2, 1]


def test_zero_seconds_queries_every_time() -> None:
    query = Counter()
    cache = TtlCache(0.0, clock=ManualClock(100.0))

    async def scenario() -> list[int]:
        return [await cache.get("k", query) for _ in range(3)]

    assert asyncio.run(scenario()) == [1, 2, 3]


def test_concurrent_callers_share_one_query() -> None:
    query = Counter()
    cache = TtlCache(1.0, clock=ManualClock(100.0))

    async def scenario() -> list[int]:
        query.release = asyncio.Event()
        callers = [asyncio.create_task(cache.get("k", query)) for _ in range(20)]
        await asyncio.sleep(0)
        query.release.set()
        return await asyncio.gather(*callers)

    assert asyncio.run(scenario()) == [1] * 20
    assert query.calls == 1


def test_a_caller_arriving_after_the_bound_does_not_join_an_old_running_query() -> None:
    clock, query = ManualClock(100.0), Counter()
    cache = TtlCache(1.0, clock=clock)

    async def scenario() -> list[int]:
        query.release = asyncio.Event()
        first = asyncio.create_task(cache.get("k", query))
        await asyncio.sleep(0)
        clock.now += 1.5  # the first query is still running, but started too long ago
        second = asyncio.create_task(cache.get("k", query))
        await asyncio.sleep(0)
        query.release.set()
        return await asyncio.gather(first, second)

    assert asyncio.run(scenario()) == [1, 2]


def test_a_failed_query_is_not_cached() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away")
        return "answer"

    cache = TtlCache(1.0, clock=ManualClock(100.0))

    async def scenario() -> str:
        with pytest.raises(ConnectionError):
            await cache.get("k", flaky)
        return await cache.get("k", flaky)

    assert asyncio.run(scenario()) == "answer"


def test_a_cancelled_caller_does_not_cancel_the_shared_query() -> None:
    query = Counter()
    cache = TtlCache(1.0, clock=ManualClock(100.0))

    async def scenario() -> int:
        query.release = asyncio.Event()
        leaving = asyncio.create_task(cache.get("k", query))
        staying = asyncio.create_task(cache.get("k", query))
        await asyncio.sleep(0)
        leaving.cancel()
        await asyncio.sleep(0)
        query.release.set()
        return await staying

    assert asyncio.run(scenario()) == 1
    assert query.calls == 1


def test_the_service_caches_stats_and_anomaly_counts_but_not_readings() -> None:
    class Backend:
        def __init__(self) -> None:
            self.calls: list[str] = []

        async def readings(self, **_: object) -> list[dict]:
            self.calls.append("readings")
            return []

        async def tag_stats(self, *, device_id: str | None) -> list[dict]:
            self.calls.append(f"stats:{device_id}")
            return []

        async def anomaly_counts(self, *, tag: str | None, since: object) -> dict[str, int]:
            self.calls.append(f"anomalies:{tag}")
            return {"a": 2, "b": 3}

    backend = Backend()
    service = QueryService(backend, cache_seconds=60)

    async def scenario() -> dict:
        for _ in range(2):
            await service.readings(tag=None, device_id=None, since=None, until=None, limit=10)
            await service.stats(device_id=None)
            await service.stats(device_id="d1")
            counts = await service.anomaly_count(tag=None, since=None)
        return counts

    assert asyncio.run(scenario()) == {"total": 5, "by_tag": {"a": 2, "b": 3}}
    assert backend.calls == ["readings", "stats:None", "stats:d1", "anomalies:None", "readings"]
