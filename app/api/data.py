"""GET /data, GET /sensors/stats, GET /sensors/anomalies/count."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from app.api.schemas import AnomalyCountOut, ReadingOut, TagStatsOut
from app.errors import ApiError
from app.security.dependencies import require_scope

router = APIRouter(dependencies=[Depends(require_scope("read"))])

TagQuery = Annotated[str | None, Query(max_length=64, description="only this tag")]
DeviceQuery = Annotated[str | None, Query(max_length=128, description="only this device")]
SinceQuery = Annotated[datetime | None, Query(description="from this time, inclusive (ISO-8601; UTC if no offset)")]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@router.get("/data", response_model=list[ReadingOut], tags=["query"], summary="Readings, newest first")
async def data(
    request: Request,
    *,
    tag: TagQuery = None,
    device_id: DeviceQuery = None,
    since: SinceQuery = None,
    until: Annotated[datetime | None, Query(description="before this time, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
):
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        raise ApiError(422, "validation_error", "since must be before until",
                       details=[{"loc": ["query", "since"], "msg": "must be before until"}])
    return await request.app.state.queries.readings(
        tag=tag, device_id=device_id, since=since, until=until, limit=limit
    )


@router.get("/sensors/stats", response_model=list[TagStatsOut], tags=["query"], summary="Statistics per tag")
async def stats(request: Request, device_id: DeviceQuery = None):
    return await request.app.state.queries.stats(device_id=device_id)


@router.get("/sensors/anomalies/count", response_model=AnomalyCountOut, tags=["query"],
            summary="Number of anomalies, in total and per tag")
async def anomaly_count(request: Request, tag: TagQuery = None, since: SinceQuery = None):
    return await request.app.state.queries.anomaly_count(tag=tag, since=_utc(since))
