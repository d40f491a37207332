"""The dashboard's live feed: one poller per process, shared by every open stream.

Each tick (1 s) the feed asks the database for the newest readings and the per-tag statistics once,
whatever the number of viewers, and hands what is new to every subscriber's queue. It reads the
database rather than listening to this process's ingest path, so a viewer sees readings that any task
ingested. New = not among the ids the previous tick saw in its window of the newest readings; rows
committed out of id order (several group-commit writers) are therefore not missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from app.services.queries import QueryService

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0
WINDOW_ROWS = 500  # at most this many new readings per tick reach the viewers (a chart, not an export)
QUEUE_LIMIT = 60  # updates held for a slow viewer; the oldest are dropped beyond this


@dataclass(frozen=True, slots=True)
class Update:
    """What one tick found: readings no earlier tick sent (oldest first) and the current counters."""

    readings: list[dict[str, Any]]
    counters: dict[str, int] | None
    error: str | None = None


def counters_of(stats: list[dict]) -> dict[str, int]:
    """The totals the dashboard shows: the same sums a client computes from GET /sensors/stats."""
    return {"total": sum(row["count"] for row in stats), "anomalies": sum(row["anomalies"] for row in stats)}


class LiveFeed:
    def __init__(self, queries: QueryService, *, tick_seconds: float = TICK_SECONDS) -> None:
        self._queries = queries
        self._tick_seconds = tick_seconds
        self._subscribers: set[asyncio.Queue[Update]] = set()
        self._task: asyncio.Task | None = None
        self._seen: set[int] | None = None
        self._starting = asyncio.Lock()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Update]]:
        queue: asyncio.Queue[Update] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        async with self._starting:
            if self._task is None or self._task.done():
                # Prime before the caller reads its snapshot: a reading committed in between is then either
                # in the snapshot or new to the first tick, never in neither.
                self._seen = None
                await self._tick()
                self._task = asyncio.create_task(self._run(), name="dashboard-live-feed")
            self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        # Runs while anyone listens: no viewer, no queries.
        await asyncio.sleep(self._tick_seconds)
        while self._subscribers:
            self._publish(await self._tick())
            await asyncio.sleep(self._tick_seconds)

    async def _tick(self) -> Update:
        try:
            rows = await self._queries.readings(tag=None, device_id=None, since=None, until=None, limit=WINDOW_ROWS)
            counters = counters_of(await self._queries.stats(device_id=None))
        except Exception as error:  # the stream stays open and says so; the next tick tries again
            log.warning("dashboard live feed could not read the database: %s", error)
            return Update(readings=[], counters=None, error="the database cannot answer right now")
        ids = {row["id"] for row in rows}
        fresh = [] if self._seen is None else [row for row in reversed(rows) if row["id"] not in self._seen]
        self._seen = ids
        return Update(readings=fresh, counters=counters)

    def _publish(self, update: Update) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(update)
