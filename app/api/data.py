"""GET /data, GET /sensors/stats, GET /sensors/anomalies/count."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import PlainValidator, WithJsonSchema

from app.api.deps import QueryServiceDep
from app.api.rendering import json_response
from app.api.schemas import AnomalyCountOut, ReadingOut, TagStatsOut
from app.errors import ApiError
from app.readings import DEVICE_ID_PATTERN, TIMESTAMP_SCHEMA, parse_timestamp
from app.security.dependencies import AUTH_RESPONSES, require_scope

READ_RESPONSES = {**AUTH_RESPONSES,
                  503: {"description": "the database cannot answer right now (down, restarting, locked); Retry-After"}}
router = APIRouter(dependencies=[Depends(require_scope("read"))], responses=READ_RESPONSES)

# Control characters are refused here: no stored tag has them, and PostgreSQL rejects NUL in any text
# parameter, which would otherwise surface as a 500. Device ids follow the ingest rule.
PRINTABLE_TAG_PATTERN = r"^[^\x00-\x1f\x7f]{1,64}$"
TagQuery = Annotated[str | None, Query(pattern=PRINTABLE_TAG_PATTERN, description="only this tag")]
DeviceQuery = Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN, description="only this device")]
# The ingest rule for timestamps (ISO-8601 only, UTC when no offset), not pydantic's lax one, which also
# takes numbers as epoch seconds: `since=0.5` would silently mean 1970.
Timestamp = Annotated[datetime, PlainValidator(parse_timestamp), WithJsonSchema(TIMESTAMP_SCHEMA)]
SinceQuery = Annotated[Timestamp | None, Query(description="from this time, inclusive (ISO-8601; UTC if no offset)")]


@router.get("/data", response_model=list[ReadingOut], tags=["query"], summary="Readings, newest first")
async def data(
    queries: QueryServiceDep,
    response: Response,
    *,
    tag: TagQuery = None,
    device_id: DeviceQuery = None,
    since: SinceQuery = None,
    until: Annotated[Timestamp | None, Query(description="before this time, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
):
    if since is not None and until is not None and since >= until:
        raise ApiError(422, "validation_error", "since must be before until",
                       details=[{"loc": ["query", "since"], "msg": "must be before until"}])
    rows = await queries.readings(
        tag=tag, device_id=device_id, since=since, until=until, limit=limit
    )
    return json_response(rows, headers_from=response)


CACHED = ("May be up to 1 s stale: each process reuses an answer for the same parameters for "
          "`SENSOR_QUERY_CACHE_SECONDS` (default 1 s) after computing it.")


@router.get("/sensors/stats", response_model=list[TagStatsOut], tags=["query"], summary="Statistics per tag",
            description=f"Count, minimum, maximum, mean, anomalies, devices and time span per tag. {CACHED}")
async def stats(queries: QueryServiceDep, response: Response, device_id: DeviceQuery = None):
    return json_response(await queries.stats(device_id=device_id), headers_from=response)


@router.get("/sensors/anomalies/count", response_model=AnomalyCountOut, tags=["query"],
            summary="Number of anomalies, in total and per tag", description=CACHED)
async def anomaly_count(queries: QueryServiceDep, response: Response, tag: TagQuery = None,
                        since: SinceQuery = None):
    answer = await queries.anomaly_count(tag=tag, since=since)
    return json_response(answer, headers_from=response)
