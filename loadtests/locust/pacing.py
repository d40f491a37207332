"""Paced users: one task every `pacing_s` seconds, each user at a random phase of its own.

Locust starts users in groups: with 1000 users over a 30 s ramp it starts 33 at once every 0.99 s.
Paced from their first task, those users would keep sending in step, and the whole population would
send within ~0.3 s of every second: bursts at ~3,300 req/s, not the steady 1000 req/s that 1000
devices reporting once a second produce. So a user's first wait is a random fraction of the pacing,
and from then on each task starts `pacing_s` after the previous one started (less the task's own time,
as Locust's `constant_throughput`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from time import perf_counter


class Pacer:
    """The waits of one paced user (Locust's `wait_time`)."""

    def __init__(self, pacing_s: float, rng: random.Random, clock: Callable[[], float] = perf_counter) -> None:
        if pacing_s <= 0:
            raise ValueError(f"pacing_s must be > 0, got {pacing_s}")
        self._pacing = pacing_s
        self._rng = rng
        self._clock = clock
        self._last_call: float | None = None
        self._last_wait = 0.0

    def wait(self) -> float:
        """Seconds to wait before the next task; called after each task (and once before the first)."""
        now = self._clock()
        if self._last_call is None:
            wait = self._rng.uniform(0.0, self._pacing)  # this user's phase
        else:
            task_time = now - self._last_call - self._last_wait
            wait = max(0.0, self._pacing - task_time)
        self._last_call, self._last_wait = now, wait
        return wait
