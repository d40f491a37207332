"""Event-loop lag: how late a short timer fires on this worker's loop.

A coroutine sleeps `interval` seconds again and again and records how much later than asked it woke
up. That delay is time the loop spent running other callbacks (request handlers, encoding, the relay)
before it could get to the timer: the queueing every request on this worker also sees.
"""

from __future__ import annotations

import asyncio
import time

from app.observability import metrics as m

INTERVAL_SECONDS = 0.1


async def watch_event_loop_lag(metrics: m.Metrics, interval: float = INTERVAL_SECONDS) -> None:
    """Record EventLoopLag (ms) once per `interval` until cancelled."""
    while True:
        asked = time.perf_counter()
        await asyncio.sleep(interval)
        metrics.observe(m.EVENT_LOOP_LAG, max(0.0, (time.perf_counter() - asked - interval) * 1000))
