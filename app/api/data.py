"""GET /data, GET /sensors/stats, GET /sensors/anomalies/count.

Lean routes (app/api/lean_route.py), like the ingest handlers: each calls the guard itself and takes its
query parameters as one model. Reads are about a quarter of `make bench`'s requests (they answer before
a commit, so closed-loop users send more of them), and FastAPI's per-request work for them (the guard
and its bearer token as dependencies, the service provider, each query parameter validated on its own)
was ~54 of the ~118 µs of CPU an in-process GET /sensors/stats took. The OpenAPI document is unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, PlainValidator, WithJsonSchema

from app.api.lean_route import LeanRoute
from app.api.rendering import json_response
from app.api.schemas import AnomalyCountOut, ReadingOut, TagStatsOut
from app.container import Services
from app.errors import ApiError
from app.readings import DEVICE_ID_PATTERN, TIMESTAMP_SCHEMA, parse_timestamp
from app.security.dependencies import AUTH_RESPONSES, BEARER_SECURITY, admit_lean

READ_RESPONSES = {**AUTH_RESPONSES,
                  503: {"description": "the database cannot answer right now (down, restarting, locked); Retry-After"}}
router = APIRouter(responses=READ_RESPONSES, route_class=LeanRoute)
SCOPE = "read"

# Control characters are refused here: no stored tag has them, and PostgreSQL rejects NUL in any text
# parameter, which would otherwise surface as a 500. Device ids follow the ingest rule.
PRINTABLE_TAG_PATTERN = r"^[^\x00-\x1f\x7f]{1,64}$"
Tag = Annotated[str | None, Field(pattern=PRINTABLE_TAG_PATTERN, description="only this tag")]
DeviceId = Annotated[str | None, Field(pattern=DEVICE_ID_PATTERN, description="only this device")]
# The ingest rule for timestamps (ISO-8601 only, UTC when no offset), not pydantic's lax one, which also
# takes numbers as epoch seconds: `since=0.5` would silently mean 1970.
Timestamp = Annotated[datetime, PlainValidator(parse_timestamp), WithJsonSchema(TIMESTAMP_SCHEMA)]
Since = Annotated[Timestamp | None, Field(description="from this time, inclusive (ISO-8601; UTC if no offset)")]


class DataQuery(BaseModel):
    tag: Tag = None
    device_id: DeviceId = None
    since: Since = None
    until: Annotated[Timestamp | None, Field(description="before this time, exclusive")] = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class StatsQuery(BaseModel):
    device_id: DeviceId = None


class AnomalyCountQuery(BaseModel):
    tag: Tag = None
    since: Since = None


async def _admitted(request: Request) -> tuple[Services, dict[str, str]]:
    """The service container and the `X-RateLimit-*` headers, once the guard let the request in."""
    return request.app.state.services, await admit_lean(request, SCOPE)


@router.get("/data", response_model=list[ReadingOut], tags=["query"], summary="Readings, newest first",
            openapi_extra=BEARER_SECURITY)
async def data(request: Request, query: Annotated[DataQuery, Query()]) -> Response:
    services, headers = await _admitted(request)
    if query.since is not None and query.until is not None and query.since >= query.until:
        raise ApiError(422, "validation_error", "since must be before until",
                       details=[{"loc": ["query", "since"], "msg": "must be before until"}])
    rows = await services.queries.readings(
        tag=query.tag, device_id=query.device_id, since=query.since, until=query.until, limit=query.limit
    )
    return json_response(rows, headers=headers)


CACHED = ("May be up to 1 s stale: each process reuses an answer for the same parameters for "
          "`SENSOR_QUERY_CACHE_SECONDS` (default 1 s) after computing it.")


@router.get("/sensors/stats", response_model=list[TagStatsOut], tags=["query"], summary="Statistics per tag",
            description=f"Count, minimum, maximum, mean, anomalies, devices and time span per tag. {CACHED}",
            openapi_extra=BEARER_SECURITY)
async def stats(request: Request, query: Annotated[StatsQuery, Query()]) -> Response:
    services, headers = await _admitted(request)
    return json_response(await services.queries.stats(device_id=query.device_id), headers=headers)


@router.get("/sensors/anomalies/count", response_model=AnomalyCountOut, tags=["query"],
            summary="Number of anomalies, in total and per tag", description=CACHED, openapi_extra=BEARER_SECURITY)
async def anomaly_count(request: Request, query: Annotated[AnomalyCountQuery, Query()]) -> Response:
    services, headers = await _admitted(request)
    return json_response(await services.queries.anomaly_count(tag=query.tag, since=query.since), headers=headers)
