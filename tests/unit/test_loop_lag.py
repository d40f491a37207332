"""app/observability/loop_lag.py: a loop blocked by a handler shows up as lag; an idle loop shows little."""

from __future__ import annotations

import asyncio
import time

from app.observability import metrics as m
from app.observability.loop_lag import watch_event_loop_lag


def lags_while(block_seconds: float) -> dict:
    metrics = m.Metrics("Test", {"Service": "t"}, sink=lambda _line: None)

    async def scenario() -> None:
        watcher = asyncio.create_task(watch_event_loop_lag(metrics, interval=0.05))
        await asyncio.sleep(0.12)
        time.sleep(block_seconds)  # a handler that does not yield: everything on this loop waits
        await asyncio.sleep(0.12)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

    asyncio.run(scenario())
    return metrics.snapshot()["distributions"][m.EVENT_LOOP_LAG]


def test_a_blocked_loop_is_measured_as_lag() -> None:
    lag = lags_while(0.3)
    assert lag["count"] >= 3
    assert lag["max"] >= 200  # ms: the 300 ms block minus at most one 50 ms interval
    assert lags_while(0.0)["max"] < lag["max"]
