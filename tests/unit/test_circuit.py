"""Circuit breaker transitions with an injected clock, and a cancelled probe (ingest and replay) that must
not leave the breaker refusing the database."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.anomaly import AnomalyDetector
from app.observability.metrics import Metrics
from app.readings import NewReading
from app.services.ingest import IngestService
from app.services.replay import DeadLetterReplayer
from app.storage.circuit import Admission, BreakerState, CircuitBreaker
from app.storage.dead_letter import LocalDeadLetterStore
from app.storage.group_commit import GroupCommitter
from app.storage.repository import ScoredReading
from tests.support.clock import ManualClock


def test_opens_after_threshold_then_half_opens_for_one_probe() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_seconds=5, clock=clock)
    for _ in range(2):
        breaker.record_failure()
        assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now = 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() is True and breaker.allow() is False  # one probe at a time
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now = 10.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow() and breaker.allow()


def test_a_probe_released_without_a_verdict_frees_the_slot_and_a_plain_call_does_not() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=5, clock=clock)
    breaker.record_failure()
    clock.now = 5.0
    probe = breaker.admit()
    assert probe is Admission.PROBE and breaker.admit() is None
    breaker.release(Admission.CALL)  # a call admitted while closed ends: the probe stays taken
    assert breaker.admit() is None
    breaker.release(probe)
    assert breaker.admit() is Admission.PROBE


# --- a cancelled probe, through the real ingest service and replayer --------------------------------


class HangingDatabase:
    """The group committer's store function while the database hangs (e.g. behind a failover)."""

    def __init__(self) -> None:
        self.called = asyncio.Event()

    async def __call__(self, batch):
        self.called.set()
        await asyncio.Event().wait()  # never answers


def half_open_breaker() -> tuple[CircuitBreaker, ManualClock]:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=5, clock=clock)
    breaker.record_failure()
    clock.now = 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    return breaker, clock


def reading(second: int) -> NewReading:
    return NewReading("d1", "fermenter_temp", datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=second), 37.0)


async def no_history(keys, limit):
    return {}


def test_a_cancelled_ingest_probe_does_not_leave_the_breaker_refusing_the_database() -> None:
    breaker, _ = half_open_breaker()

    async def scenario() -> None:
        database = HangingDatabase()
        committer = GroupCommitter(database, max_rows=100)
        committer.start()
        service = IngestService(
            detector=AnomalyDetector(window=50, threshold=3.0, min_samples=10), committer=committer,
            dead_letters=LocalDeadLetterStore(Path(tempfile.mkdtemp())), breaker=breaker, history=no_history,
            metrics=Metrics("test", {}, sink=lambda _: None), retry_attempts=3, retry_base_seconds=0)
        request = asyncio.create_task(service.ingest([reading(1)]))
        await asyncio.wait_for(database.called.wait(), 5)  # the request is the probe, inside the database call
        assert breaker.admit() is None  # meanwhile nobody else probes
        request.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await request
        for task in committer._tasks:
            task.cancel()

    asyncio.run(scenario())
    assert breaker.admit() is Admission.PROBE  # the next request may probe the database again


def test_a_cancelled_replay_probe_does_not_leave_the_breaker_refusing_the_database(tmp_path: Path) -> None:
    breaker, _ = half_open_breaker()
    store = LocalDeadLetterStore(tmp_path)

    async def scenario() -> None:
        await store.put([ScoredReading("d1", "fermenter_temp", reading(1).ts, 37.0, False, None)])
        database = HangingDatabase()
        committer = GroupCommitter(database, max_rows=100)
        committer.start()
        replayer = DeadLetterReplayer(store=store, committer=committer, breaker=breaker,
                                      metrics=Metrics("test", {}, sink=lambda _: None), interval_seconds=1)
        replay = asyncio.create_task(replayer.replay_once())
        await asyncio.wait_for(database.called.wait(), 5)
        replay.cancel()  # shutdown mid-replay
        with pytest.raises(asyncio.CancelledError):
            await replay
        for task in committer._tasks:
            task.cancel()

    asyncio.run(scenario())
    assert breaker.admit() is Admission.PROBE
    assert asyncio.run(store.names())  # not committed: the letter stays
