"""Per-key leaky-bucket rate limiting (in process memory, O(1) per request).

Each accepted request adds 1 to its key's bucket; the bucket drains continuously at `rate_per_second`
and holds at most `burst`. A request that would overflow the bucket is refused and adds nothing.
The service is a single asyncio process and `check` never awaits, so no lock is needed. This limiter
is per process: with a shared state store configured (SENSOR_STATE_STORE_URL) the same bucket lives
in the store (app/state/ratelimit.py) and this one is the per-task fallback while the store is down.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

# Absorbs float drift from draining, so a bucket that is "exactly" one request below full still admits one.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request against its bucket, with what the client may do next."""

    allowed: bool
    limit: int
    remaining: int
    """Whole requests that would still be accepted right now."""
    reset_seconds: int
    """Seconds until the bucket is empty again (rounded up)."""
    retry_after: int
    """Seconds until one more request fits (rounded up); 0 if one fits now, >= 1 when refused."""


@dataclass(slots=True)
class _Bucket:
    level: float
    updated_at: float


class LeakyBucketLimiter:
    """Leaky buckets keyed by an arbitrary string (the client id)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def check(self, key: str, rate_per_second: float, burst: int) -> Decision:
        """Count one request for `key` if it fits and say whether it was allowed."""
        if rate_per_second <= 0 or burst < 1:
            raise ValueError(f"rate_per_second must be > 0 and burst >= 1, got {rate_per_second}, {burst}")
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(level=0.0, updated_at=now)
        elapsed = max(0.0, now - bucket.updated_at)
        level = max(0.0, bucket.level - elapsed * rate_per_second)

        allowed = level + 1 <= burst + _EPSILON
        if allowed:
            level += 1
        bucket.level = level
        bucket.updated_at = now
        return decision_for(level, allowed, rate_per_second, burst)


def decision_for(level: float, allowed: bool, rate_per_second: float, burst: int) -> Decision:
    """What a bucket at `level` (after counting the request if it was allowed) tells the client.

    Shared by this in-process limiter and the shared-store one (app/state/ratelimit.py), so both
    answer with the same headers for the same bucket."""
    remaining = max(0, math.floor(burst - level + _EPSILON))
    # Rounded up without tolerance: a client that waits `retry_after` must not be refused again.
    retry_after = 0 if remaining else max(1, math.ceil((level + 1 - burst) / rate_per_second))
    return Decision(
        allowed=allowed,
        limit=burst,
        remaining=remaining,
        reset_seconds=max(0, math.ceil(level / rate_per_second - _EPSILON)),
        retry_after=retry_after,
    )
