"""Identical concurrent reads share one query, and every answer is still fresh.

A dashboard's screens poll the same few series, so many requests for the same `GET /data` parameters
arrive while the answer to one of them is being read. Each would otherwise cost its own database round
trip (the client's CPU for a round trip is several times that of decoding 50 rows).

The rule that keeps the answers fresh: a request is answered by a query that STARTED AFTER the request
arrived, as if it had run its own. So a reading committed before the request was sent is in its answer.
Per key at most one query runs at a time; requests that arrive while it runs wait for the next one, which
starts when it ends and answers all of them. Under load a query answers many requests; a lone request
waits for nothing but its own query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


class _Query:
    """One query for a key: its task, and whether it has started (after that nobody may join it)."""

    __slots__ = ("started", "task")

    def __init__(self) -> None:
        self.started = False
        self.task: asyncio.Task | None = None


class SharedReads:
    """Runs `compute` for a key, shared by the callers that arrived before it started (module doc).

    A failed query fails every caller that shared it and is not reused. A caller that gives up
    (cancelled) does not cancel the query the others are waiting for.
    """

    def __init__(self) -> None:
        self._newest: dict[Hashable, _Query] = {}  # per key: the query started last, or waiting to start

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        newest = self._newest.get(key)
        if newest is None or newest.started:
            query = _Query()
            query.task = asyncio.ensure_future(self._run(key, query, newest, compute))
            query.task.add_done_callback(retrieve_exception)  # every waiter may have gone
            self._newest[key] = newest = query
        return await asyncio.shield(newest.task)  # type: ignore[arg-type]

    async def _run(self, key: Hashable, query: _Query, previous: _Query | None,
                   compute: Callable[[], Awaitable[Any]]) -> Any:
        try:
            if previous is not None and previous.task is not None:
                await asyncio.wait([previous.task])  # one query per key at a time; its outcome is its callers'
            query.started = True
            return await compute()
        finally:
            if self._newest.get(key) is query:
                del self._newest[key]


def retrieve_exception(task: asyncio.Task) -> None:
    """A done callback: marks a shared task's exception retrieved, so that a task all of whose callers
    went away logs no "exception was never retrieved"."""
    if not task.cancelled():
        task.exception()
