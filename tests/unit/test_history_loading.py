"""Anomaly-window history for series a process has not seen: loaded before scoring, once per series,
many series per query, and a failed load starts the windows empty instead of failing the request."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from app.anomaly import AnomalyDetector, SeriesKey
from app.observability.metrics import Metrics
from app.readings import NewReading
from app.services.ingest import HISTORY_BATCH_SERIES, IngestService
from app.storage.circuit import CircuitBreaker
from app.storage.repository import ScoredReading, StoredResult

START = datetime(2026, 1, 1, tzinfo=UTC)
STEADY = [37.0, 37.2] * 25  # a stored window: mean 37.1, std 0.1


class Committer:
    def __init__(self) -> None:
        self.next_id = 0

    async def submit(self, readings: Sequence[ScoredReading]) -> list[StoredResult]:
        results = []
        for reading in readings:
            self.next_id += 1
            results.append(StoredResult(self.next_id, reading.is_anomaly, duplicate=False))
        return results


class History:
    """Stored values of some series; records each query's series."""

    def __init__(self, stored: dict[SeriesKey, list[float]], *, fail: bool = False) -> None:
        self.stored = stored
        self.fail = fail
        self.queries: list[list[SeriesKey]] = []

    async def __call__(self, keys: Sequence[SeriesKey], limit: int) -> dict[SeriesKey, list[float]]:
        self.queries.append(list(keys))
        await asyncio.sleep(0.01)  # a round trip: later requests queue behind it
        if self.fail:
            raise ConnectionError("database went away")
        return {key: self.stored[key][-limit:] for key in keys if key in self.stored}


def service(history: History) -> IngestService:
    return IngestService(
        detector=AnomalyDetector(window=50, threshold=3.0, min_samples=10),
        committer=Committer(),  # type: ignore[arg-type]
        dead_letters=None,  # type: ignore[arg-type] - the database never fails here
        breaker=CircuitBreaker(failure_threshold=5, reset_seconds=5),
        history=history,
        metrics=Metrics("test", {}, sink=lambda _: None),
        retry_attempts=1,
        retry_base_seconds=0,
    )


def reading(device: str, value: float, tag: str = "fermenter_temp", second: int = 0) -> NewReading:
    return NewReading(device, tag, START + timedelta(seconds=second), value)


def test_a_known_series_is_scored_against_its_stored_history() -> None:
    history = History({("d1", "fermenter_temp"): STEADY})
    ingest = service(history)

    async def scenario():
        return await ingest.ingest([reading("d1", 45.0)])

    (result,) = asyncio.run(scenario()).results
    assert result.is_anomaly  # without the history, the first value of a series is never flagged
    assert history.queries == [[("d1", "fermenter_temp")]]


def test_new_series_of_concurrent_requests_are_loaded_together_and_once() -> None:
    history = History({("d7", "fermenter_temp"): STEADY})
    ingest = service(history)
    devices = [f"d{i}" for i in range(300)]

    async def scenario():
        first = [ingest.ingest([reading(device, 45.0)]) for device in devices]
        again = [ingest.ingest([reading(device, 45.0, second=1)]) for device in devices[:50]]
        outcomes = await asyncio.gather(*first, *again)
        await ingest.ingest([reading("d7", 37.1, second=2)])  # live now: no query
        return outcomes

    outcomes = asyncio.run(scenario())
    loaded = [key for query in history.queries for key in query]
    assert sorted(loaded) == sorted((device, "fermenter_temp") for device in devices)  # each once
    assert len(history.queries) < 10  # batched, not one query per series
    assert max(len(query) for query in history.queries) <= HISTORY_BATCH_SERIES
    flagged = {device for device, outcome in zip(devices, outcomes, strict=False) if outcome.results[0].is_anomaly}
    assert flagged == {"d7"}  # only the series with stored history can judge its first value


def test_a_failed_history_load_starts_the_windows_empty_and_the_readings_are_stored() -> None:
    history = History({("d1", "fermenter_temp"): STEADY}, fail=True)
    ingest = service(history)

    async def scenario():
        return await asyncio.gather(*(ingest.ingest([reading(f"d{i}", 45.0)]) for i in range(5)))

    outcomes = asyncio.run(scenario())
    assert all(o.results[0].status == "success" and not o.results[0].is_anomaly for o in outcomes)


def test_a_request_that_goes_away_does_not_cancel_a_load_others_wait_for() -> None:
    history = History({("d1", "fermenter_temp"): STEADY})
    ingest = service(history)

    async def scenario():
        leaving = asyncio.create_task(ingest.ingest([reading("d1", 45.0)]))
        staying = asyncio.create_task(ingest.ingest([reading("d1", 45.0, second=1)]))
        await asyncio.sleep(0)
        leaving.cancel()
        return await staying

    (result,) = asyncio.run(scenario()).results
    assert result.is_anomaly
    assert len(history.queries) == 1
