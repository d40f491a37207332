"""Read side: readings by tag/device/time, per-tag statistics, anomaly counts.

`GET /data` is answered from the database by a query that started after the request arrived; identical
requests that arrive while such a query runs share the next one (app/services/shared_reads.py).
Dashboards poll the two aggregates (`/sensors/stats`, `/sensors/anomalies/count`), so each process
answers them from a short-lived cache per parameter set: an answer is computed by one query at a time
(concurrent requests for the same parameters share it) and is served for at most `cache_seconds` after
that query started, so it is never more than `cache_seconds` stale. `cache_seconds` 0 queries on every
request. The backend (asyncpg on PostgreSQL, SQLAlchemy otherwise) is chosen by app/storage/backends.py;
a database that cannot answer right now becomes `ServiceUnavailable` (503).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime
from typing import Any

from app.services.shared_reads import SharedReads, retrieve_exception
from app.services.unavailable import ServiceUnavailable
from app.storage.backends import QueryBackend
from app.storage.unavailable import is_database_unavailable

MAX_CACHED_ANSWERS = 1024  # parameter sets kept per process (least recently computed dropped first)


class TtlCache:
    """Answers per key, each served for at most `seconds` after the query that computed it started.

    One computation per key at a time: callers arriving while it runs (and within `seconds` of its
    start) wait for it instead of starting their own. A failed computation is not cached. A caller that
    gives up (cancelled) does not cancel the computation the others are waiting for.
    """

    def __init__(self, seconds: float, *, max_entries: int = MAX_CACHED_ANSWERS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._max_entries = max_entries
        self._clock = clock
        self._answers: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()  # key -> (started, answer)
        self._running: dict[Hashable, tuple[float, asyncio.Task]] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        if self.seconds <= 0:
            return await compute()
        now = self._clock()
        cached = self._answers.get(key)
        if cached is not None and now - cached[0] < self.seconds:
            return cached[1]
        running = self._running.get(key)
        if running is None or now - running[0] >= self.seconds:
            task = asyncio.ensure_future(self._compute(key, now, compute))
            task.add_done_callback(retrieve_exception)  # every waiter may have gone
            running = (now, task)
            self._running[key] = running
        return await asyncio.shield(running[1])

    async def _compute(self, key: Hashable, started: float, compute: Callable[[], Awaitable[Any]]) -> Any:
        try:
            answer = await compute()
        finally:
            if self._running.get(key, (None,))[0] == started:
                del self._running[key]
        current = self._answers.get(key)
        if current is None or current[0] < started:
            self._answers[key] = (started, answer)
            self._answers.move_to_end(key)
            while len(self._answers) > self._max_entries:
                self._answers.popitem(last=False)
        return answer


# The database cannot answer right now (down, restarting, locked); the caller may retry later.
DATABASE_UNAVAILABLE = "database_unavailable"


class QueryService:
    """The read endpoints' answers from a backend chosen by app/storage/backends.py."""

    def __init__(self, backend: QueryBackend, *, cache_seconds: float = 0.0) -> None:
        self._backend = backend
        self._cache = TtlCache(cache_seconds)
        self._reads = SharedReads()

    async def readings(self, *, tag: str | None, device_id: str | None, since: datetime | None,
                       until: datetime | None, limit: int, sample_every: int = 1) -> list[dict]:
        """`sample_every` n > 1 keeps about 1 in n readings (evenly over time) plus every anomaly."""
        return await _available(self._reads.get(
            ("readings", tag, device_id, since, until, limit, sample_every),
            lambda: self._backend.readings(tag=tag, device_id=device_id, since=since, until=until, limit=limit,
                                           sample_every=sample_every),
        ))

    async def stats(self, *, device_id: str | None) -> list[dict]:
        return await _available(
            self._cache.get(("stats", device_id), lambda: self._backend.tag_stats(device_id=device_id))
        )

    async def anomaly_count(self, *, tag: str | None, since: datetime | None) -> dict:
        async def count() -> dict:
            by_tag = await self._backend.anomaly_counts(tag=tag, since=since)
            return {"total": sum(by_tag.values()), "by_tag": by_tag}

        return await _available(self._cache.get(("anomalies", tag, since), count))


async def _available(query: Awaitable[Any]) -> Any:
    """The query's answer; ServiceUnavailable when the database cannot answer right now."""
    try:
        return await query
    except Exception as error:
        if is_database_unavailable(error):
            raise ServiceUnavailable(DATABASE_UNAVAILABLE,
                                     "the database cannot answer right now; retry later") from error
        raise
