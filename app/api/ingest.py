"""POST /ingest and POST /ingest/batch: thin handlers over the ingest service.

The hot path, so the handlers take no FastAPI dependencies (`LeanRoute`): each calls the security
guard (`admit_lean`: `admit`, the same one `require_scope` wraps) and reads the service container itself. As
dependencies, the guard, its bearer-token sub-dependency and the container cost ~25 % of a
single-reading request's CPU (in-process, 364 against 280 µs). The operations still document their
bearer-token security (`BEARER_SECURITY`)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from app.api.lean_route import LeanRoute
from app.api.rendering import json_response
from app.api.schemas import BATCH_BODY, SINGLE_BODY, BatchResultOut, ReadingResultOut
from app.container import Services
from app.errors import ApiError
from app.observability import metrics as m
from app.readings import InvalidInput, validate_batch_body, validate_single_body
from app.security.dependencies import AUTH_RESPONSES, BEARER_SECURITY, admit_lean
from app.services.ingest import IngestOutcome, ReadingResult

router = APIRouter(tags=["ingest"], route_class=LeanRoute)
STATUS_CODES = {"success": 201, "duplicate": 200, "accepted": 202}
ERRORS = {
    **AUTH_RESPONSES,
    413: {"description": "body larger than the configured limit"},
    415: {"description": "a declared Content-Type other than JSON, or a compressed (Content-Encoding) body"},
    422: {"description": "invalid reading(s): every problem with its location (index and field)"},
    503: {"description": "neither the database nor the dead-letter store could take it (Retry-After)"},
}
SCOPE = "ingest"


@router.post(
    "/ingest",
    status_code=201,
    response_model=ReadingResultOut | BatchResultOut,
    summary="Ingest one reading (or one device record)",
    description="201 stored, 200 duplicate (already stored), 202 accepted into the dead-letter store while the "
    "database is unavailable. Timestamps without an offset are UTC. A device record is stored as one "
    "reading per metric and answered like a batch.",
    responses={200: {"description": "duplicate"}, 202: {"description": "accepted for later storage"}, **ERRORS},
    openapi_extra={**SINGLE_BODY, **BEARER_SECURITY},
)
async def ingest_one(request: Request):
    services: Services = request.app.state.services
    headers = await admit_lean(request, SCOPE)
    readings = await _validated(request, validate_single_body, services)
    outcome = await services.ingest.ingest(readings)
    if len(readings) > 1:
        return _batch(outcome, headers)
    (result,) = outcome.results
    return json_response(_result(result), STATUS_CODES[result.status], headers=headers)


@router.post(
    "/ingest/batch",
    status_code=201,
    response_model=BatchResultOut,
    summary="Ingest a batch of readings atomically",
    description="A JSON list of readings or device records, or {\"readings\": [...]}. Any invalid reading "
    "rejects the whole batch (nothing is stored) with the index and field of each error.",
    responses={202: {"description": "accepted for later storage"}, **ERRORS},
    openapi_extra={**BATCH_BODY, **BEARER_SECURITY},
)
async def ingest_batch(request: Request):
    services: Services = request.app.state.services
    headers = await admit_lean(request, SCOPE)
    readings = await _validated(request, validate_batch_body, services)
    return _batch(await services.ingest.ingest(readings), headers)


def _require_plain_json(request: Request) -> None:
    """JSON, or no declared type (lenient for simple clients); anything declared otherwise is named back."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", f"send application/json, not {media_type!r}")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ApiError(415, "unsupported_media_type",
                       f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")


async def _validated(request: Request, validate, services: Services):
    """The body's readings, or 415/422 naming what is wrong."""
    _require_plain_json(request)
    body = await request.body()
    try:
        return validate(body, services.rules, datetime.now(UTC))
    except InvalidInput as error:
        services.metrics.increment(m.VALIDATION_REJECTS)
        raise ApiError(422, "validation_error", error.message, details=error.details) from None


def _result(result: ReadingResult) -> dict:
    """A `ReadingResultOut` body."""
    return {"status": result.status, "id": result.id, "is_anomaly": result.is_anomaly}


def _batch(outcome: IngestOutcome, headers: dict[str, str]) -> Response:
    """A `BatchResultOut` body: 201, or 202 when the readings went to the dead-letter store."""
    results = [_result(r) for r in outcome.results]
    duplicates = sum(1 for r in outcome.results if r.status == "duplicate")
    body = {
        "status": "accepted" if outcome.dead_lettered else "success",
        "accepted": len(results) - duplicates,
        "duplicates": duplicates,
        "results": results,
    }
    return json_response(body, 202 if outcome.dead_lettered else 201, headers=headers)
