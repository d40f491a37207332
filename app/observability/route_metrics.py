"""Per-route request metrics (seed 000): requests, 4xx, 5xx and latency per route template.

Aggregated in memory per route (`POST /ingest`, `GET /data`, ...; never the raw path, so the
dimension stays bounded) and flushed as one CloudWatch EMF line per route and interval, with the
dimensions Service, Environment, Route. The service dashboard graphs them with SEARCH expressions
(monitoring/dashboards.py), so a new route appears without a dashboard change.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.observability.metrics import MAX_VALUES_PER_METRIC, SERVICE_NAME, print_line

ROUTE_REQUESTS = "RouteRequests"
ROUTE_4XX = "Route4xx"
ROUTE_5XX = "Route5xx"
ROUTE_LATENCY = "RouteLatency"
ROUTE_METRICS = (ROUTE_REQUESTS, ROUTE_4XX, ROUTE_5XX, ROUTE_LATENCY)
ROUTE_DIMENSION = "Route"
UNMATCHED_ROUTE = "unmatched"  # 404s and anything outside a route: one bucket, not one per path


@dataclass
class _RouteTotals:
    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0
    seen: int = 0
    latencies: list[float] = field(default_factory=list)


class RouteMetrics:
    """Counts and a latency reservoir per route; `flush()` returns (and sinks) one EMF line per route."""

    def __init__(self, namespace: str, app_env: str, *, clock: Callable[[], float] = time.time,
                 sink: Callable[[str], None] = print_line, rng: random.Random | None = None) -> None:
        self.namespace = namespace
        self.app_env = app_env
        self._clock = clock
        self._sink = sink
        self._rng = rng or random.Random()
        self._routes: dict[str, _RouteTotals] = {}

    def record(self, route: str, status: int, milliseconds: float) -> None:
        totals = self._routes.get(route)
        if totals is None:
            totals = self._routes[route] = _RouteTotals()
        totals.requests += 1
        totals.client_errors += 400 <= status < 500
        totals.server_errors += status >= 500
        totals.seen += 1
        # Reservoir sampling keeps at most EMF's 100 values per metric and line.
        if len(totals.latencies) < MAX_VALUES_PER_METRIC:
            totals.latencies.append(milliseconds)
        else:
            slot = self._rng.randrange(totals.seen)
            if slot < MAX_VALUES_PER_METRIC:
                totals.latencies[slot] = milliseconds

    def flush(self) -> list[str]:
        routes, self._routes = self._routes, {}
        timestamp = int(self._clock() * 1000)
        lines = []
        for route, totals in sorted(routes.items()):
            line = {
                "_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["Service", "Environment", ROUTE_DIMENSION]],
                    "Metrics": [{"Name": ROUTE_REQUESTS, "Unit": "Count"}, {"Name": ROUTE_4XX, "Unit": "Count"},
                                {"Name": ROUTE_5XX, "Unit": "Count"},
                                {"Name": ROUTE_LATENCY, "Unit": "Milliseconds"}],
                }]},
                "Service": SERVICE_NAME, "Environment": self.app_env, ROUTE_DIMENSION: route,
                ROUTE_REQUESTS: totals.requests, ROUTE_4XX: totals.client_errors, ROUTE_5XX: totals.server_errors,
                ROUTE_LATENCY: totals.latencies,
            }
            lines.append(json.dumps(line, separators=(",", ":")))
        for line in lines:
            self._sink(line)
        return lines

    async def run_flusher(self, interval_seconds: float) -> None:
        try:
            while True:
                await asyncio.sleep(interval_seconds)
                self.flush()
        finally:
            self.flush()
