"""Per-route metrics through the real app over HTTP (ASGI transport): route templates, 4xx/5xx, latency."""

from __future__ import annotations

import json

import httpx
import pytest

from app.main import create_app
from app.observability.route_metrics import UNMATCHED_ROUTE, RouteMetrics
from app.settings import Settings


@pytest.mark.anyio
async def test_requests_are_counted_per_route_template() -> None:
    application = create_app(Settings())
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        await client.get("/health")
        await client.get("/health")
        await client.post("/ingest", json={"tag": "fermenter_temp"})  # no token: 401
        await client.get("/no/such/path")
    lines = []
    application.state.services.route_metrics._sink = lines.append
    application.state.services.route_metrics.flush()
    by_route = {json.loads(line)["Route"]: json.loads(line) for line in lines}
    assert by_route["GET /health"]["RouteRequests"] == 2
    assert by_route["GET /health"]["Route4xx"] == 0 and len(by_route["GET /health"]["RouteLatency"]) == 2
    assert by_route["POST /ingest"]["Route4xx"] == 1
    assert by_route[UNMATCHED_ROUTE]["Route4xx"] == 1
    emf = by_route["GET /health"]["_aws"]["CloudWatchMetrics"][0]
    assert emf["Dimensions"] == [["Service", "Environment", "Route"]]


def test_latency_values_stay_within_the_emf_limit() -> None:
    lines: list[str] = []
    metrics = RouteMetrics("SensorPlatform", "sensor-test", sink=lines.append)
    for i in range(500):
        metrics.record("GET /data", 503 if i % 10 == 0 else 200, float(i))
    (line,) = metrics.flush()
    body = json.loads(line)
    assert body["RouteRequests"] == 500 and body["Route5xx"] == 50 and len(body["RouteLatency"]) == 100
    assert metrics.flush() == []  # the interval starts empty
