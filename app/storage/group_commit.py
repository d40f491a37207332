"""Group commit: readings from concurrent requests share one transaction.

Each request hands its readings to `submit` and waits; writer tasks take everything queued
(up to `max_rows`), store it in one transaction, and answer every waiting request only after
the commit. While one transaction is in flight the next group accumulates, so under load the
number of commits per second stays small and no request waits for an artificial timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from app.storage.repository import ScoredReading, StoredResult

log = logging.getLogger(__name__)

StoreGroup = Callable[[Sequence[ScoredReading]], Awaitable[list[StoredResult]]]


@dataclass
class _Pending:
    readings: Sequence[ScoredReading]
    future: asyncio.Future[list[StoredResult]]
    queued_at: float


class GroupCommitter:
    def __init__(
        self,
        store_group: StoreGroup,
        *,
        max_rows: int,
        writers: int = 1,
        on_commit: Callable[[int, float], None] | None = None,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        self._store_group = store_group
        self._max_rows = max_rows
        self._writers = writers
        self._on_commit = on_commit
        self._on_wait = on_wait  # ms the group's oldest request queued before its transaction began
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._closing = False

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_loop(), name=f"group-commit-{i}")
                       for i in range(self._writers)]

    async def submit(self, readings: Sequence[ScoredReading]) -> list[StoredResult]:
        """Store `readings`; returns after they are committed (raises if the transaction failed)."""
        if self._closing:
            raise RuntimeError("group commit is shutting down")
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(readings, future, time.perf_counter()))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Write what is queued, then stop the writers."""
        self._closing = True
        self._wakeup.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _write_loop(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            group = self._take_group()
            await self._write(group)

    def _take_group(self) -> list[_Pending]:
        group, rows = [], 0
        while self._queue and (not group or rows + len(self._queue[0].readings) <= self._max_rows):
            pending = self._queue.popleft()
            if pending.future.cancelled():
                continue
            group.append(pending)
            rows += len(pending.readings)
        return group

    async def _write(self, group: list[_Pending]) -> None:
        if not group:
            return
        batch = [reading for pending in group for reading in pending.readings]
        started = time.perf_counter()
        if self._on_wait is not None:
            self._on_wait((started - group[0].queued_at) * 1000)
        try:
            results = await self._store_group(batch)
        except Exception as error:  # every waiting request learns the group failed
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        if self._on_commit is not None:
            self._on_commit(len(batch), (time.perf_counter() - started) * 1000)
        offset = 0
        for pending in group:
            count = len(pending.readings)
            if not pending.future.done():
                pending.future.set_result(results[offset : offset + count])
            offset += count
