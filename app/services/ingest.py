"""Ingestion: score validated readings, store them with group commit, and never lose one.

Scoring uses the shared state store's windows when one is configured and reachable (identical
verdicts on every task), else this process's windows.

Storage order, per request: the database through group commit (bounded retries with exponential
backoff, skipped while the circuit breaker is open); if that fails, the durable dead-letter store
(answered 202, replayed later); only if both fail does the client get 503 and should retry.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from app.anomaly import AnomalyDetector, SeriesKey
from app.observability import metrics as m
from app.readings import NewReading
from app.services.unavailable import ServiceUnavailable
from app.state.windows import SharedWindows
from app.storage.circuit import BreakerState, CircuitBreaker
from app.storage.group_commit import GroupCommitter
from app.storage.repository import ScoredReading

log = logging.getLogger(__name__)


class DeadLetterWriter(Protocol):
    """Where readings go when the database does not take them (a store, or the coalescing writer)."""

    async def put(self, readings: list[ScoredReading]) -> str: ...


# (series, window) -> each series' last `window` stored values, oldest first (absent: none stored).
History = Callable[[Sequence[SeriesKey], int], Awaitable[dict[SeriesKey, list[float]]]]
HISTORY_TIMEOUT_SECONDS = 2.0
HISTORY_BATCH_SERIES = 500  # series per history query
MAX_HISTORY_QUERIES = 2  # history queries in flight per process
# Neither the database nor the dead-letter store took the readings.
STORAGE_UNAVAILABLE = "storage_unavailable"


# Not frozen, like NewReading (app/readings.py): created for every reading.
@dataclass(slots=True)
class ReadingResult:
    status: Literal["success", "duplicate", "accepted"]
    id: int | None
    is_anomaly: bool


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    dead_lettered: bool
    results: list[ReadingResult]


class IngestService:
    def __init__(
        self,
        *,
        detector: AnomalyDetector,
        committer: GroupCommitter,
        dead_letters: DeadLetterWriter,
        breaker: CircuitBreaker,
        history: History,
        metrics: m.Metrics,
        retry_attempts: int,
        retry_base_seconds: float,
        shared_windows: SharedWindows | None = None,
    ) -> None:
        self._detector = detector
        self._shared_windows = shared_windows
        self._committer = committer
        self._dead_letters = dead_letters
        self._breaker = breaker
        self._history = history
        self._metrics = metrics
        self._retry_attempts = retry_attempts
        self._retry_base_seconds = retry_base_seconds
        self._loading: dict[SeriesKey, asyncio.Future[None]] = {}
        self._history_queue: list[SeriesKey] = []
        self._history_loaders = 0
        self._history_tasks: set[asyncio.Task] = set()

    async def ingest(self, readings: Sequence[NewReading]) -> IngestOutcome:
        scored = await self._score_shared(readings)
        if scored is None:  # no shared store, or it is unreachable: this process's windows
            await self._ensure_history({(r.device_id, r.tag) for r in readings})
            scored = self._score(readings)
        stored = await self._store(scored)
        if stored is not None:
            return self._stored_outcome(scored, stored)
        return await self._dead_letter(scored)

    async def _score_shared(self, readings: Sequence[NewReading]) -> list[ScoredReading] | None:
        if self._shared_windows is None:
            return None
        verdicts = await self._shared_windows.score([((r.device_id, r.tag), r.value) for r in readings])
        if verdicts is None:
            return None
        return [ScoredReading(r.device_id, r.tag, r.ts, r.value, v.is_anomaly, v.z_score, r.metadata)
                for r, v in zip(readings, verdicts, strict=True)]

    def _score(self, readings: Sequence[NewReading]) -> list[ScoredReading]:
        scored = []
        for reading in readings:
            verdict = self._detector.score((reading.device_id, reading.tag), reading.value)
            scored.append(ScoredReading(reading.device_id, reading.tag, reading.ts, reading.value,
                                        verdict.is_anomaly, verdict.z_score, reading.metadata))
        return scored

    async def _store(self, scored: list[ScoredReading]):
        for attempt in range(self._retry_attempts):
            admission = self._breaker.admit()
            if admission is None:
                return None
            try:
                results = await self._committer.submit(scored)
            except Exception as error:
                self._breaker.record_failure()
                log.warning("database write failed (attempt %d/%d): %s", attempt + 1,
                            self._retry_attempts, error)
                if attempt + 1 < self._retry_attempts:
                    backoff = self._retry_base_seconds * 2**attempt
                    await asyncio.sleep(backoff + random.uniform(0, backoff))
                continue
            except BaseException:
                # Cancelled (client gone, shutdown) without a verdict: a probe must not stay taken.
                self._breaker.release(admission)
                raise
            self._breaker.record_success()
            return results
        return None

    def _stored_outcome(self, scored: list[ScoredReading], stored) -> IngestOutcome:
        results = [ReadingResult("duplicate" if s.duplicate else "success", s.id, s.is_anomaly) for s in stored]
        fresh = [s for s in stored if not s.duplicate]
        self._metrics.increment(m.READINGS_INGESTED, len(fresh))
        self._metrics.increment(m.ANOMALIES_DETECTED, sum(1 for s in fresh if s.is_anomaly))
        self._metrics.increment(m.DUPLICATES, len(stored) - len(fresh))
        return IngestOutcome(False, results)

    async def _dead_letter(self, scored: list[ScoredReading]) -> IngestOutcome:
        try:
            name = await self._dead_letters.put(scored)
        except Exception as error:
            log.error("dead-letter store failed too; %d readings refused: %s", len(scored), error)
            raise ServiceUnavailable(STORAGE_UNAVAILABLE, "the reading could not be stored; retry later") from error
        log.debug("database unavailable: %d readings kept in dead letter %s", len(scored), name)
        self._metrics.increment(m.DEAD_LETTERED, len(scored))
        self._metrics.increment(m.ANOMALIES_DETECTED, sum(1 for s in scored if s.is_anomaly))
        return IngestOutcome(True, [ReadingResult("accepted", None, s.is_anomaly) for s in scored])

    async def _ensure_history(self, keys: set[SeriesKey]) -> None:
        """Rebuild windows of series this process has not seen yet, once each, before scoring.

        Series first seen while a history query runs are queued and loaded together by the next one
        (like group commit), so a burst of new devices costs a few queries, not one per series."""
        missing = [key for key in keys if self._detector.needs_history(key)]
        if not missing:
            return
        loop = asyncio.get_running_loop()
        waiting = []
        for key in missing:
            future = self._loading.get(key)
            if future is None:
                future = self._loading[key] = loop.create_future()
                self._history_queue.append(key)
            waiting.append(future)
        while self._history_queue and self._history_loaders < MAX_HISTORY_QUERIES:
            self._history_loaders += 1
            loader = asyncio.ensure_future(self._load_queued_history())
            self._history_tasks.add(loader)
            loader.add_done_callback(self._history_tasks.discard)
        # asyncio.wait, not gather: a request that goes away must not cancel a load others wait for.
        await asyncio.wait(waiting)

    async def _load_queued_history(self) -> None:
        try:
            while self._history_queue:
                batch = self._history_queue[:HISTORY_BATCH_SERIES]
                del self._history_queue[:HISTORY_BATCH_SERIES]
                await self._load_history(batch)
        finally:
            self._history_loaders -= 1

    async def _load_history(self, keys: list[SeriesKey]) -> None:
        found: dict[SeriesKey, list[float]] = {}
        try:
            # While the database is known to be down, start the windows empty instead of waiting.
            if self._breaker.state is BreakerState.CLOSED:
                found = await asyncio.wait_for(self._history(keys, self._detector.window), HISTORY_TIMEOUT_SECONDS)
        except Exception as error:
            log.warning("could not load history of %d series (e.g. %s): %s", len(keys), keys[0], error)
        finally:
            for key in keys:
                self._detector.load(key, found.get(key, ()))
                future = self._loading.pop(key, None)
                if future is not None and not future.done():
                    future.set_result(None)
