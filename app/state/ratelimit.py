"""Per-client leaky buckets in the shared store: N tasks together admit what one would.

One script call per request (coalesced with other requests' store work into one pipeline). While the
store is unreachable the per-task `LeakyBucketLimiter` decides instead: each task then admits the
client's full rate on its own (so up to N times the limit across N tasks; the WAF's rate-based rule
still bounds a client at the edge), and the StateStoreFallbacks metric counts those decisions.
"""

from __future__ import annotations

from app.observability import metrics as m
from app.security.ratelimit import Decision, LeakyBucketLimiter, decision_for
from app.state.scripts import LEAKY_BUCKET
from app.state.store import Call, StateStore, StoreUnavailable

KEY_PREFIX = "sensor:rl:"


class SharedRateLimiter:
    """`check` like LeakyBucketLimiter's, awaited, against the bucket every task shares."""

    def __init__(self, store: StateStore, *, fallback: LeakyBucketLimiter, metrics: m.Metrics) -> None:
        self._store = store
        self._fallback = fallback
        self._metrics = metrics

    async def check(self, key: str, rate_per_second: float, burst: int) -> Decision:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError(f"rate_per_second must be > 0 and burst >= 1, got {rate_per_second}, {burst}")
        try:
            [(allowed, level)] = await self._store.run(
                [Call(LEAKY_BUCKET, KEY_PREFIX + key, (repr(float(rate_per_second)), burst))])
        except StoreUnavailable:
            self._metrics.increment(m.STATE_STORE_FALLBACKS)
            return self._fallback.check(key, rate_per_second, burst)
        return decision_for(float(level), allowed == 1, rate_per_second, burst)
