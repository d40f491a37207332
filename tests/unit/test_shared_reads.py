"""Identical concurrent reads share a query, and every answer comes from a query that started after its
request arrived (app/services/shared_reads.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from app.services.shared_reads import SharedReads


class Reads:
    """A query whose answer is the list of requests that had arrived when it started; each run waits for
    `release` (when set) before answering."""

    def __init__(self) -> None:
        self.arrived: list[str] = []
        self.starts = 0
        self.release: asyncio.Event | None = None

    def query(self) -> Callable[[], Awaitable[list[str]]]:
        async def run() -> list[str]:
            self.starts += 1
            seen = list(self.arrived)
            if self.release is not None:
                await self.release.wait()
            return seen
        return run


async def arrive(reads: Reads, shared: SharedReads, name: str, key: str = "k") -> list[str]:
    reads.arrived.append(name)
    return await shared.get(key, reads.query())


def test_requests_arriving_together_share_one_query() -> None:
    async def scenario() -> tuple[list[list[str]], int]:
        reads, shared = Reads(), SharedReads()
        answers = await asyncio.gather(*(arrive(reads, shared, f"r{i}") for i in range(20)))
        return answers, reads.starts

    answers, starts = asyncio.run(scenario())
    assert starts == 1
    assert all(answer == [f"r{i}" for i in range(20)] for answer in answers)


def test_a_request_arriving_while_a_query_runs_gets_the_next_query_which_sees_it() -> None:
    async def scenario() -> tuple[dict[str, list[str]], int]:
        reads, shared = Reads(), SharedReads()
        reads.release = asyncio.Event()
        first = asyncio.create_task(arrive(reads, shared, "first"))
        await asyncio.sleep(0.01)  # the first query has started and waits
        later = [asyncio.create_task(arrive(reads, shared, f"later{i}")) for i in range(5)]
        await asyncio.sleep(0.01)
        assert reads.starts == 1  # the later ones wait: one query per key at a time
        reads.release.set()
        answers = {"first": await first}
        for index, task in enumerate(later):
            answers[f"later{index}"] = await task
        return answers, reads.starts

    answers, starts = asyncio.run(scenario())
    assert answers["first"] == ["first"]  # its query started before the others arrived
    for index in range(5):
        assert f"later{index}" in answers[f"later{index}"]  # fresh: started after each arrived
        assert answers[f"later{index}"] == ["first"] + [f"later{i}" for i in range(5)]
    assert starts == 2  # the five shared the second query


def test_different_keys_do_not_share() -> None:
    async def scenario() -> int:
        reads, shared = Reads(), SharedReads()
        await asyncio.gather(arrive(reads, shared, "a", key="a"), arrive(reads, shared, "b", key="b"))
        return reads.starts

    assert asyncio.run(scenario()) == 2


def test_a_failure_reaches_every_caller_of_that_query_and_the_next_query_runs() -> None:
    class Failing(RuntimeError):
        pass

    async def scenario() -> tuple[list[BaseException | str], str]:
        shared = SharedReads()
        release = asyncio.Event()

        async def fail() -> str:
            await release.wait()
            raise Failing("the database went away")

        callers = [asyncio.create_task(shared.get("k", fail)) for _ in range(3)]
        await asyncio.sleep(0)
        release.set()
        outcomes = await asyncio.gather(*callers, return_exceptions=True)

        async def succeed() -> str:
            return "answer"

        return outcomes, await shared.get("k", succeed)

    outcomes, after = asyncio.run(scenario())
    assert len(outcomes) == 3 and all(isinstance(outcome, Failing) for outcome in outcomes)
    assert after == "answer"


def test_a_caller_that_gives_up_does_not_cancel_the_query_others_wait_for() -> None:
    async def scenario() -> tuple[list[str], bool]:
        reads, shared = Reads(), SharedReads()
        reads.release = asyncio.Event()
        leaving = asyncio.create_task(arrive(reads, shared, "leaving"))
        staying = asyncio.create_task(arrive(reads, shared, "staying"))
        await asyncio.sleep(0.01)
        leaving.cancel()
        await asyncio.sleep(0)
        reads.release.set()
        return await staying, leaving.cancelled()

    answer, cancelled = asyncio.run(scenario())
    assert cancelled
    assert answer == ["leaving", "staying"]


def test_nothing_is_kept_once_the_queries_are_done() -> None:
    async def scenario() -> int:
        reads, shared = Reads(), SharedReads()
        await asyncio.gather(*(arrive(reads, shared, f"r{i}", key=f"k{i % 7}") for i in range(50)))
        return len(shared._newest)

    assert asyncio.run(scenario()) == 0


@pytest.mark.parametrize("waiting", [1, 3])
def test_queries_for_one_key_never_overlap(waiting: int) -> None:
    async def scenario() -> int:
        shared, running, most = SharedReads(), 0, 0

        async def query() -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.005)
            running -= 1

        async def caller(delay: float) -> None:
            await asyncio.sleep(delay)
            await shared.get("k", query)

        await asyncio.gather(*(caller(0.002 * i) for i in range(10 * waiting)))
        return most

    assert asyncio.run(scenario()) == 1
