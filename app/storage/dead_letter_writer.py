"""Coalesced dead letters: during a database outage every failed group of one task that arrives
within `window_seconds` goes into ONE letter, and each request is answered only once that letter is
durable (its put returned).

Why: one letter per request turned a 15 s outage at ~2,000 req/s into ~20,000 objects — S3 accepts
about 3,500 PUTs/s per prefix, and replaying small objects one by one took longer than the outage.
Here a task has at most one put in flight and starts puts at least `window_seconds` apart, so it
writes at most `1 / window_seconds` letters per second whatever the request rate (20/s at the
default 50 ms; `puts_per_second_bound`). At `max_tasks` tasks that is `max_tasks / window_seconds`
PUTs/s for the whole service (400/s for 20 tasks), spread over the store's shard prefixes — far
under S3's per-prefix limit, which leaves room for the replayers' GETs and DELETEs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from app.storage.dead_letter import DeadLetterStore
from app.storage.repository import ScoredReading

log = logging.getLogger(__name__)

S3_PUTS_PER_PREFIX = 3500  # AWS: PUT/COPY/POST/DELETE requests per second per partitioned prefix
DEFAULT_WINDOW_SECONDS = 0.05
DEFAULT_MAX_READINGS = 20_000  # per letter (~2.5 MB of JSON); more waits for the next window


def puts_per_second_bound(window_seconds: float) -> float:
    """Most dead-letter PUTs one task issues per second."""
    return 1.0 / window_seconds


@dataclass
class _Waiting:
    readings: list[ScoredReading]
    future: asyncio.Future[str]


class CoalescingDeadLetterWriter:
    """`put(readings)` like a DeadLetterStore's, shared by every request of this task."""

    def __init__(self, store: DeadLetterStore, *, window_seconds: float = DEFAULT_WINDOW_SECONDS,
                 max_readings: int = DEFAULT_MAX_READINGS,
                 on_letter: Callable[[str, int, int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._window = window_seconds
        self._max_readings = max_readings
        self._on_letter = on_letter
        self._clock = clock
        self._waiting: deque[_Waiting] = deque()
        self._first_waiting_at = 0.0
        self._last_put_at = float("-inf")
        self._flusher: asyncio.Task | None = None
        self.letters_written = 0

    async def put(self, readings: list[ScoredReading]) -> str:
        """Returns the letter's name once it is durable; raises what the store raised."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        # If this request goes away, nobody awaits the outcome: mark it seen (no "never retrieved" noise).
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        if not self._waiting:
            self._first_waiting_at = self._clock()
        self._waiting.append(_Waiting(readings, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_while_waiting(), name="dead-letter-writer")
        # shield: a request that goes away must not cancel the put that other requests wait for.
        return await asyncio.shield(future)

    async def _flush_while_waiting(self) -> None:
        while self._waiting:
            due = max(self._first_waiting_at, self._last_put_at) + self._window
            delay = due - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            group = self._take()
            self._last_put_at = self._clock()
            await self._write(group)

    def _take(self) -> list[_Waiting]:
        group, rows = [], 0
        while self._waiting and (not group or rows + len(self._waiting[0].readings) <= self._max_readings):
            waiting = self._waiting.popleft()
            group.append(waiting)
            rows += len(waiting.readings)
        if self._waiting:
            self._first_waiting_at = self._clock()
        return group

    async def _write(self, group: list[_Waiting]) -> None:
        readings = [reading for waiting in group for reading in waiting.readings]
        try:
            name = await self._store.put(readings)
        except Exception as error:  # every request of the letter learns it is not durable (503)
            for waiting in group:
                if not waiting.future.done():
                    waiting.future.set_exception(error)
            return
        self.letters_written += 1
        if self._on_letter is not None:
            self._on_letter(name, len(readings), len(group))
        for waiting in group:
            if not waiting.future.done():
                waiting.future.set_result(name)
