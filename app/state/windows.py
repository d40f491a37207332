"""Anomaly windows in the shared store: a reading gets the same verdict whichever task scores it.

For each request (or batch) every series it touches is one script call that returns the series'
window as it was and appends the new values, atomically; all of them travel in one pipeline with
other requests' calls. The verdicts are then computed here with `app.anomaly.judge`, a pure function
of the window's contents, so they are the ones a single process would give.

A missing window (first sight, eviction, expiry, a store restart) is rebuilt from PostgreSQL: the
store answers "missing" without touching it, this task loads the series' stored history (once per
series per task, many series per query) and calls again with it as a seed; the store uses the seed
only if no other task has rebuilt the window meanwhile.

`score` returns None when the store is unreachable: the caller then scores with its per-process
windows. Series scored that way are remembered, and their stored windows are dropped and rebuilt from
PostgreSQL when the store is back, since they missed those readings.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from app.anomaly import AnomalyDetector, SeriesKey, Verdict
from app.observability import metrics as m
from app.state.scripts import WINDOW
from app.state.store import Call, StateStore, StoreUnavailable

log = logging.getLogger(__name__)

KEY_PREFIX = "sensor:w:"
History = Callable[[Sequence[SeriesKey], int], Awaitable[dict[SeriesKey, list[float]]]]
HISTORY_TIMEOUT_SECONDS = 2.0


def window_key(key: SeriesKey) -> str:
    device_id, tag = key
    # Length-prefixed so that no (device, tag) pair can collide with another.
    return f"{KEY_PREFIX}{len(device_id)}:{device_id}:{tag}"


class SharedWindows:
    """Scores readings against windows kept in the shared store."""

    def __init__(self, store: StateStore, *, detector: AnomalyDetector, history: History, ttl_seconds: int,
                 history_allowed: Callable[[], bool], metrics: m.Metrics) -> None:
        self._store = store
        self._detector = detector  # its window size, threshold and warm-up; its windows are the fallback's
        self._history = history
        self._history_allowed = history_allowed
        self._ttl = ttl_seconds
        self._metrics = metrics
        self._stale: set[SeriesKey] = set()
        self._loading: dict[SeriesKey, asyncio.Future[list[float]]] = {}
        self._in_fallback = False
        self._queries: set[asyncio.Task] = set()

    async def score(self, items: Sequence[tuple[SeriesKey, float]]) -> list[Verdict] | None:
        """Verdicts for `items` in order, or None if the store cannot be used right now."""
        values: dict[SeriesKey, list[float]] = {}
        for key, value in items:
            values.setdefault(key, []).append(value)
        try:
            windows = await self._windows(values)
        except StoreUnavailable:
            self._fall_back(values)
            return None
        if self._in_fallback:
            self._in_fallback = False
            log.info("state store reachable again: anomaly windows are shared again")
        return self._verdicts(items, windows)

    async def _windows(self, values: dict[SeriesKey, list[float]]) -> dict[SeriesKey, list[float]]:
        """Each series' window before these values (the values appended in the same atomic step)."""
        keys = list(values)
        stale = [key for key in keys if key in self._stale]
        if stale:
            await self._store.run([Call(WINDOW, window_key(key), self._args("reset", (), ())) for key in stale])
            self._stale.difference_update(stale)
        results = await self._store.run([Call(WINDOW, window_key(key), self._args("score", (), values[key]))
                                         for key in keys])
        windows = {key: result for key, result in zip(keys, results, strict=True) if result is not None}
        missing = [key for key in keys if key not in windows]
        if missing:
            history = await self._load_history(missing)
            results = await self._store.run([
                Call(WINDOW, window_key(key), self._args("seed", history.get(key, ()), values[key]))
                for key in missing])
            windows.update(zip(missing, results, strict=True))
        return {key: list(map(float, window.split())) for key, window in windows.items()}

    def _args(self, mode: str, seed: Sequence[float], new: Sequence[float]) -> list[str | int]:
        # repr() round-trips a float exactly; the store keeps the strings.
        seed = list(seed)[-self._detector.window:]
        return [self._detector.window, self._ttl, mode, len(seed), *map(repr, seed), *map(repr, new)]

    def _verdicts(self, items: Sequence[tuple[SeriesKey, float]], windows: dict[SeriesKey, list[float]]) \
            -> list[Verdict]:
        live = {key: deque(window, maxlen=self._detector.window) for key, window in windows.items()}
        verdicts = []
        for key, value in items:
            window = live[key]
            verdicts.append(self._detector.judge(window, value))
            window.append(value)
        return verdicts

    def _fall_back(self, values: dict[SeriesKey, list[float]]) -> None:
        if not self._in_fallback:
            self._in_fallback = True
            # This task's own windows are stale from the time the store served: rebuild them from
            # PostgreSQL as each series comes up.
            self._detector.forget_all()
        self._stale.update(values)
        self._metrics.increment(m.STATE_STORE_FALLBACKS, sum(len(items) for items in values.values()))

    async def _load_history(self, keys: list[SeriesKey]) -> dict[SeriesKey, list[float]]:
        """Stored history of `keys`; requests needing the same series at once share one query."""
        loop = asyncio.get_running_loop()
        futures: dict[SeriesKey, asyncio.Future[list[float]]] = {}
        mine = []
        for key in keys:
            future = self._loading.get(key)
            if future is None:
                future = self._loading[key] = loop.create_future()
                mine.append(key)
            futures[key] = future
        if mine:
            # A task of its own: a request that goes away must not cancel a load others wait for.
            query = asyncio.ensure_future(self._query_history(mine))
            self._queries.add(query)
            query.add_done_callback(self._queries.discard)
        await asyncio.wait(futures.values())
        return {key: future.result() for key, future in futures.items()}

    async def _query_history(self, keys: list[SeriesKey]) -> None:
        found: dict[SeriesKey, list[float]] = {}
        try:
            # While the database is known to be down, start the windows empty instead of waiting.
            if self._history_allowed():
                found = await asyncio.wait_for(self._history(keys, self._detector.window), HISTORY_TIMEOUT_SECONDS)
        except Exception as error:
            log.warning("could not load history of %d series (e.g. %s): %s", len(keys), keys[0], error)
        finally:
            for key in keys:
                self._loading.pop(key).set_result(found.get(key, []))
