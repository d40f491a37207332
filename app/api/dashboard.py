"""The live dashboard: sign-in, the page, and one Server-Sent Events stream per viewer.

    GET  /dashboard            the page (signed in), else a redirect to the sign-in form
    GET  /dashboard/sign-in    the local sign-in form (client credentials of a client with the `read` scope)
    POST /dashboard/sign-in    sets the HttpOnly session cookie (app/security/sessions.py), back to /dashboard
    POST /dashboard/sign-out   clears it
    GET  /dashboard/session    who is signed in (the page asks when its stream fails: expired or down?)
    GET  /dashboard/stream     text/event-stream: a snapshot for the chosen range, then new readings and
                               counters pushed every second (app/services/live_feed.py)

Tokens never travel in a URL. Locally (`SENSOR_DASHBOARD_AUTH=session`) the viewer signs in with the form;
in AWS (`alb`) the ALB authenticated the viewer with Cognito/OIDC before the request arrived (listener
rule on /dashboard*) and the app verifies the header it signed (app/security/alb_oidc.py). Each viewer
has its own rate-limit bucket and at most `dashboard_streams_per_viewer` open streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic_core import to_json

from app.api.deps import ServicesDep
from app.api.pages import page_response
from app.container import Services
from app.errors import ApiError
from app.security.alb_oidc import HEADER as OIDC_HEADER
from app.security.alb_oidc import AlbOidcVerifier
from app.security.dependencies import check_bucket, rate_limit_headers
from app.security.sessions import (
    clear_session,
    require_same_origin,
    session_key,
    session_token,
    set_session,
)
from app.services.live_feed import LiveFeed, counters_of
from app.services.queries import QueryService

READ_SCOPE = "read"
RANGES = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1), "24h": timedelta(hours=24)}
SNAPSHOT_POINTS_PER_TAG = 1000  # the newest points of each tag within the range
RECONNECT_MILLISECONDS = 2000  # EventSource's retry delay after the stream ends (e.g. a restart)
KEEPALIVE_SECONDS = 15.0
PAGE_HEADERS = {"Cache-Control": "no-store"}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Someone looking at the dashboard: a signed-in client (session) or an ALB-authenticated user."""

    name: str
    key: str  # non-secret id: rate-limit bucket and stream count


async def _viewer_or_none(request: Request, services: Services) -> Viewer | None:
    if services.settings.dashboard_auth == "alb":
        user = await _alb_verifier(services).verify(request.headers.get(OIDC_HEADER))
        return Viewer(name=user.email or user.subject, key=f"oidc:{user.subject}")
    token = session_token(request)
    if token is None:
        return None
    try:
        principal = services.tokens.verify(token)
    except ApiError:
        return None  # expired or signed with a rotated key: sign in again
    if READ_SCOPE not in principal.scopes:
        return None
    return Viewer(name=principal.client_id, key=f"session:{session_key(token)}")


def _alb_verifier(services: Services) -> AlbOidcVerifier:
    settings = services.settings
    return services.once("alb_oidc_verifier", lambda: AlbOidcVerifier(
        alb_arn=settings.alb_arn or "", region=settings.aws_region, key_url_template=settings.alb_public_key_url))


async def _count(services: Services, viewer: Viewer) -> None:
    """One request against the viewer's own bucket (a viewer cannot use up another's rate), shared
    across tasks like the API clients' buckets."""
    settings = services.settings
    decision = await check_bucket(services, f"dashboard:{viewer.key}", settings.dashboard_rate_per_second,
                                  settings.dashboard_burst)
    if not decision.allowed:
        raise ApiError(429, "rate_limited", f"this dashboard viewer exceeded {settings.dashboard_rate_per_second:g} "
                       f"requests per second (burst {settings.dashboard_burst}); retry after {decision.retry_after} s",
                       headers=rate_limit_headers(decision))


async def require_viewer(request: Request, services: ServicesDep) -> Viewer:
    viewer = await _viewer_or_none(request, services)
    if viewer is None:
        raise ApiError(401, "not_signed_in", "sign in at /dashboard/sign-in first")
    await _count(services, viewer)
    return viewer


@router.get("/dashboard")
async def dashboard(request: Request, services: ServicesDep) -> Response:
    viewer = await _viewer_or_none(request, services)
    if viewer is None:
        return RedirectResponse("/dashboard/sign-in", status_code=303, headers=PAGE_HEADERS)
    await _count(services, viewer)
    return page_response("dashboard", headers=PAGE_HEADERS)


@router.get("/dashboard/sign-in")
async def sign_in_page(services: ServicesDep) -> Response:
    if services.settings.dashboard_auth != "session":
        raise ApiError(404, "not_found", "sign-in happens at the load balancer (Cognito/OIDC) in this environment")
    return page_response("sign-in", headers=PAGE_HEADERS)


@router.post("/dashboard/sign-in")
async def sign_in(
    request: Request,
    services: ServicesDep,
    client_id: Annotated[str, Form(min_length=1, max_length=64)],
    client_secret: Annotated[str, Form(min_length=1, max_length=1024)],
) -> Response:
    if services.settings.dashboard_auth != "session":
        raise ApiError(404, "not_found", "sign-in happens at the load balancer (Cognito/OIDC) in this environment")
    require_same_origin(request)
    try:
        issued = services.tokens.issue(client_id, client_secret, {READ_SCOPE})
    except ApiError as error:
        # Wrong secret, unknown client or a client without `read`: the form says so, nothing else leaks.
        reason = "scope" if error.code == "invalid_scope" else "credentials"
        return RedirectResponse(f"/dashboard/sign-in?failed={reason}", status_code=303, headers=PAGE_HEADERS)
    response = RedirectResponse("/dashboard", status_code=303, headers=PAGE_HEADERS)
    set_session(response, request, issued["access_token"], issued["expires_in"])
    return response


# The ALB keeps its authenticated session in these cookies (sharded when large); expiring them signs the
# viewer out of the ALB (the identity provider may still sign them straight back in).
ALB_SESSION_COOKIES = tuple(f"AWSELBAuthSessionCookie-{shard}" for shard in range(4))


@router.post("/dashboard/sign-out")
async def sign_out(request: Request, services: ServicesDep) -> Response:
    require_same_origin(request)
    if services.settings.dashboard_auth == "alb":
        response = RedirectResponse("/dashboard", status_code=303, headers=PAGE_HEADERS)
        for name in ALB_SESSION_COOKIES:
            response.delete_cookie(name, path="/", secure=True, httponly=True)
        return response
    response = RedirectResponse("/dashboard/sign-in", status_code=303, headers=PAGE_HEADERS)
    clear_session(response, request)
    return response


@router.get("/dashboard/session")
async def session(viewer: Annotated[Viewer, Depends(require_viewer)]) -> dict[str, str]:
    return {"viewer": viewer.name}


RangeQuery = Annotated[Literal["5m", "1h", "24h"], Query(alias="range", description="how far back the snapshot goes")]


@router.get("/dashboard/stream")
async def stream(services: ServicesDep, viewer: Annotated[Viewer, Depends(require_viewer)],
                 range_name: RangeQuery = "5m") -> StreamingResponse:
    streams: dict[str, int] = services.once("dashboard_streams", dict)
    limit = services.settings.dashboard_streams_per_viewer
    if streams.get(viewer.key, 0) >= limit:
        raise ApiError(429, "too_many_streams", f"this viewer already has {limit} open dashboard streams; "
                       "close a tab", headers={"Retry-After": "5"})
    streams[viewer.key] = streams.get(viewer.key, 0) + 1
    return StreamingResponse(_events(services, viewer, RANGES[range_name], streams), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + to_json(data, inf_nan_mode="null") + b"\n\n"


async def _events(services: Services, viewer: Viewer, span: timedelta,
                  streams: dict[str, int]) -> AsyncIterator[bytes]:
    feed: LiveFeed = services.once("live_feed", lambda: LiveFeed(services.queries))
    try:
        async with feed.subscribe() as updates:
            yield f"retry: {RECONNECT_MILLISECONDS}\n\n".encode()
            yield _event("snapshot", await _snapshot(services.queries, span))
            while services.accepting:  # SIGTERM: end the stream so the server can stop; the browser reconnects
                try:
                    update = await asyncio.wait_for(updates.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if update.error:
                    yield _event("problem", {"message": update.error})
                    continue
                if update.readings:
                    yield _event("readings", update.readings)
                yield _event("counters", update.counters)
    finally:
        streams[viewer.key] -= 1
        if not streams[viewer.key]:
            del streams[viewer.key]


def sample_every(stats_row: dict[str, Any], since: datetime) -> int:
    """How thinly to sample a tag so that its points over the range stay near SNAPSHOT_POINTS_PER_TAG.

    Estimated from the tag's statistics (count over its first..last time span): a 24 h range of a busy tag
    then spans the whole day instead of showing only its newest minutes."""
    first, last = stats_row["first_timestamp"], stats_row["last_timestamp"]
    span = max((last - first).total_seconds(), 1.0)
    covered = max(0.0, min((last - since).total_seconds(), span))
    expected = stats_row["count"] * covered / span
    return max(1, math.ceil(expected / SNAPSHOT_POINTS_PER_TAG))


async def _snapshot(queries: QueryService, span: timedelta) -> dict[str, Any]:
    """The chosen range's points per tag (thinned evenly when there are many; anomalies always kept) and the
    counters, as the stream's first event."""
    since = datetime.now(UTC) - span
    stats = await queries.stats(device_id=None)
    rows = sorted(stats, key=lambda row: row["tag"])
    series = await asyncio.gather(*(queries.readings(
        tag=row["tag"], device_id=None, since=since, until=None, limit=SNAPSHOT_POINTS_PER_TAG * 2,
        sample_every=sample_every(row, since)) for row in rows))
    readings = [row for rows in series for row in reversed(rows)]
    return {"since": since, "range_seconds": int(span.total_seconds()), "readings": readings,
            "counters": counters_of(stats)}


async def stop_live_feed(services: Services) -> None:
    feed: LiveFeed | None = services.lazy.get("live_feed")
    if feed is not None:
        with contextlib.suppress(Exception):
            await feed.stop()
