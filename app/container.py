"""The typed container of what request handlers use, attached once to `app.state.services`.

`build_app` creates it with the settings, the token service, the rate limiter and the route metrics;
`create_app` adds the metrics and the reading rules; the lifespan adds what needs I/O to start (the
database engine, the query and ingest services, the circuit breaker, the shared rate limiter) and
flips `started`/`accepting`. Handlers reach it through the typed dependencies in `app/api/deps.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing the services here would load them before they are needed
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.observability.metrics import Metrics
    from app.observability.route_metrics import RouteMetrics
    from app.readings import ReadingRules
    from app.security.ratelimit import LeakyBucketLimiter
    from app.security.tokens import TokenService
    from app.services.ingest import IngestService
    from app.services.queries import QueryService
    from app.settings import Settings
    from app.state.ratelimit import SharedRateLimiter
    from app.storage.circuit import CircuitBreaker


@dataclass(slots=True, eq=False)
class Services:
    """One per application. Fields after `route_metrics` stay None where that application does not
    have them (the read API has no ingest service, rules or breaker)."""

    settings: Settings
    tokens: TokenService
    limiter: LeakyBucketLimiter
    route_metrics: RouteMetrics | None = None
    metrics: Metrics | None = None
    rules: ReadingRules | None = None
    # Started by the lifespan.
    engine: AsyncEngine | None = None
    queries: QueryService | None = None
    ingest: IngestService | None = None
    breaker: CircuitBreaker | None = None
    shared_limiter: SharedRateLimiter | None = None  # counts against the shared store when there is one
    started: bool = False
    accepting: bool = False  # False while starting and from SIGTERM on: /ready answers 503
    # Created on first use, one per process (the dashboard's verifier, streams and live feed).
    lazy: dict[str, Any] = field(default_factory=dict)

    def once(self, name: str, create: Any) -> Any:
        """The process's `name`, created by `create()` on first use."""
        value = self.lazy.get(name)
        if value is None:
            value = self.lazy[name] = create()
        return value


def services_of(state: Any) -> Services:
    """The container on an application's `state` (`request.app.state`)."""
    return state.services
