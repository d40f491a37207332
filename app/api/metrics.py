"""GET /metrics: the service's in-memory metrics for the current interval, so the numbers the app emits
to CloudWatch can be watched locally (`make up`) without AWS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from app.api.deps import MetricsDep
from app.security.dependencies import AUTH_RESPONSES, require_scope

router = APIRouter(dependencies=[Depends(require_scope("read"))], responses=AUTH_RESPONSES)

SUMMARY = "Metrics of the current interval (what the next EMF line will carry)"
DESCRIPTION = (
    "The aggregator's `snapshot()`: `namespace`, `dimensions` (`Service`, `Environment`), "
    "`interval_started` (epoch seconds; counters and distributions reset at every flush, "
    "`SENSOR_METRICS_FLUSH_SECONDS`), `counters` (name → sum this interval, every counter present), "
    "`gauges` (name → last value, only gauges ever set) and `distributions` (name → "
    "`{count, sum, min, max, p50, p90, p99}`; percentiles from the reservoir sample, only distributions "
    "observed this interval). Names are declared in `app/observability/metrics.py`."
)


@router.get("/metrics", tags=["observability"], summary=SUMMARY, description=DESCRIPTION)
async def metrics(current: MetricsDep) -> dict[str, Any]:
    """Return this process's metrics snapshot (one process only: each ECS task has its own)."""
    return current.snapshot()
