"""Circuit breaker in front of the database: after `failure_threshold` consecutive failures it
opens for `reset_seconds` (requests go straight to the dead-letter store instead of hammering a
database that is down), then lets one probe through; a success closes it again.

A caller admitted as the probe must end it one way or another: `record_success`, `record_failure`,
or, when it leaves without a verdict (cancelled, a `BaseException`, a letter that never reached
the database), `release(admission)`. `guard()` does that on every exit, so a cancelled probe cannot
leave the breaker refusing the database until a restart."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Admission(Enum):
    """Why a call was let through: the breaker was closed, or it is the one half-open probe."""

    CALL = "call"
    PROBE = "probe"


class CircuitBreaker:
    def __init__(self, *, failure_threshold: int, reset_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failure_threshold
        self._reset_seconds = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._reset_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def admit(self) -> Admission | None:
        """May a call go to the database now? In half-open state only one probe at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return Admission.CALL
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return Admission.PROBE
        return None

    def allow(self) -> bool:
        return self.admit() is not None

    def release(self, admission: Admission | None) -> None:
        """The admitted call ended without a verdict: free the probe slot if it held it."""
        if admission is Admission.PROBE:
            self._probing = False

    @contextmanager
    def guard(self, admission: Admission | None) -> Iterator[None]:
        """Release `admission` on any exit that recorded no verdict (exception, cancellation)."""
        try:
            yield
        except BaseException:
            self.release(admission)
            raise

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        self._failures += 1
        self._probing = False
        if self._opened_at is not None or self._failures >= self._threshold:
            self._opened_at = self._clock()
