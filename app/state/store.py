"""The connection to the shared state store and the one way to talk to it: script calls, coalesced.

Calls submitted while a round trip is in flight wait and go together in the next pipeline (like group
commit for the database), so under load a request's store work costs a fraction of a round trip.
Every call is one single-key Lua script (app/state/scripts.py): atomic by itself, never retried
(a retry could apply it twice).

When a round trip fails or exceeds `timeout` the store is marked down for `retry_seconds`: callers get
`StoreUnavailable` at once and use their per-process fallback, without waiting on a dead connection.
The next call after that tries again on a fresh connection, so the store comes back without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.retry import Retry

from app.observability import metrics as m
from app.state.scripts import ALL, Script

log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """The store did not answer (down, slow, or marked down a moment ago); use the fallback."""


@dataclass(frozen=True, slots=True)
class Call:
    script: Script
    key: str
    args: Sequence[str | int | float]


class StateStore:
    """Owns the client (a small connection pool) and the coalescing of script calls."""

    def __init__(self, client: redis.Redis, *, timeout: float, retry_seconds: float, metrics: m.Metrics,
                 clock=time.monotonic) -> None:
        self._client = client
        self._timeout = timeout
        self._retry_seconds = retry_seconds
        self._metrics = metrics
        self._clock = clock
        self._down_until = 0.0
        self._pending: list[tuple[list[Call], asyncio.Future[list[Any]]]] = []
        self._flushing = False
        self._flush_tasks: set[asyncio.Task] = set()

    @classmethod
    def from_url(cls, url: str, *, timeout: float, retry_seconds: float, metrics: m.Metrics,
                 credential_provider=None) -> StateStore:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True,
            # No client-side retries: a script call is not idempotent, and the fallback is the retry.
            retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0,
            max_connections=16, credential_provider=credential_provider,
        )
        return cls(client, timeout=timeout, retry_seconds=retry_seconds, metrics=metrics)

    @property
    def available(self) -> bool:
        """False while marked down after a failure (the fallbacks serve); True once the pause is over."""
        return self._clock() >= self._down_until

    async def run(self, calls: list[Call]) -> list[Any]:
        """The results of `calls` (in order), run in the next pipeline; raises StoreUnavailable."""
        if not self.available:
            raise StoreUnavailable("state store marked down")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((calls, future))
        if not self._flushing:
            self._flushing = True
            task = asyncio.create_task(self._flush(), name="state-store-flush")
            self._flush_tasks.add(task)
            task.add_done_callback(self._flush_tasks.discard)
        return await future

    async def load_scripts(self) -> None:
        """Put the scripts into the store's cache (start-up); a failure only marks the store down."""
        try:
            for script in ALL:
                await asyncio.wait_for(self._client.script_load(script.source), self._timeout)
        except (RedisError, OSError, TimeoutError) as error:
            self._mark_down(error)

    async def close(self) -> None:
        await asyncio.gather(*self._flush_tasks, return_exceptions=True)
        await self._client.aclose()

    async def _flush(self) -> None:
        try:
            while self._pending:
                groups, self._pending = self._pending, []
                await self._execute(groups)
        finally:
            self._flushing = False

    async def _execute(self, groups: list[tuple[list[Call], asyncio.Future[list[Any]]]]) -> None:
        calls = [call for group, _ in groups for call in group]
        try:
            # Each exchange has its own timeout (`_send`); this bounds a connect, a NOSCRIPT reload and a re-run.
            async with asyncio.timeout(self._timeout * 3):
                results = await self._pipeline(calls)
        except (RedisError, OSError, TimeoutError) as error:
            self._mark_down(error)
            for _, future in groups:
                if not future.done():
                    future.set_exception(StoreUnavailable(str(error) or type(error).__name__))
            return
        self._metrics.gauge(m.STATE_STORE_UNAVAILABLE, 0)
        start = 0
        for group, future in groups:
            part = results[start:start + len(group)]
            start += len(group)
            if future.done():
                continue
            error = next((item for item in part if isinstance(item, Exception)), None)
            if error is not None:
                # e.g. NOPERM after an ACL change: it would fail again at once, so pause like for an outage.
                self._mark_down(error)
                future.set_exception(StoreUnavailable(f"script failed: {error}"))
            else:
                future.set_result(part)

    async def _pipeline(self, calls: list[Call]) -> list[Any]:
        results = await self._send(calls)
        # NOSCRIPT (store restarted or flushed): nothing of that call ran, so load and re-run just those.
        missing = [index for index, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:
            for script in ALL:
                await self._client.script_load(script.source)
            for index, result in zip(missing, await self._send([calls[i] for i in missing]), strict=True):
                results[index] = result
        return results

    async def _send(self, calls: list[Call]) -> list[Any]:
        """One round trip on a pooled connection: every EVALSHA written at once, then each reply read; an
        error reply stays in its slot (like a non-raising pipeline). redis-py's `Pipeline` does the same
        with about 60 % more CPU per round trip (command stack, callbacks), paid on every request."""
        pool = self._client.connection_pool
        connection = await pool.get_connection()
        try:
            packed = b"".join([call.script.evalsha_command(call.key, call.args) for call in calls])
            results: list[Any] = []
            # One timeout for the whole exchange, not one per reply (each would arm and cancel a timer).
            async with asyncio.timeout(self._timeout):
                await connection.send_packed_command(packed, check_health=False)
                self._metrics.increment(m.STATE_STORE_ROUND_TRIPS)
                for _ in calls:
                    try:
                        results.append(await connection.read_response(timeout=math.inf))
                    except ResponseError as error:
                        results.append(error)
            return results
        except BaseException:
            # A failed, timed-out or cancelled exchange leaves unread replies behind: never reuse it.
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)

    def _mark_down(self, error: BaseException) -> None:
        if self.available:
            log.warning("state store unavailable, per-task fallback for %.1fs: %s", self._retry_seconds,
                        error or type(error).__name__)
        self._down_until = self._clock() + self._retry_seconds
        self._metrics.gauge(m.STATE_STORE_UNAVAILABLE, 1)
