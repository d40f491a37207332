"""FastAPI wiring for security: attaching the service container (app/container.py) with the token service
and limiter, the guard (`admit`) and `require_scope`, which makes it a route dependency.

A protected route reads `Authorization: Bearer <token>`, verifies it, checks the scope, then counts the
request against the client's leaky bucket and reports the bucket in `X-RateLimit-*` response headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Request, Response, Security
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from app.container import Services
from app.errors import ApiError
from app.security.ratelimit import Decision, LeakyBucketLimiter
from app.security.tokens import Principal, TokenService
from app.settings import ClientConfig, Settings

MISSING_TOKEN_HEADERS = {"WWW-Authenticate": "Bearer"}
# OpenAPI `responses` of every route behind `require_scope`: what the guard itself can answer.
AUTH_RESPONSES: dict[int | str, dict] = {
    401: {"description": "missing, expired or invalid token"},
    403: {"description": "the token lacks the scope this operation requires"},
    429: {"description": "rate limit exceeded (Retry-After)"},
}


class BearerToken(SecurityBase):
    """Extracts the token from `Authorization: Bearer <token>`; shows as a bearer (JWT) scheme in OpenAPI."""

    def __init__(self) -> None:
        self.model = HTTPBearerModel(
            bearerFormat="JWT",
            description="Access token from `POST /auth/token` (OAuth2 client credentials).",
        )
        self.scheme_name = "BearerToken"

    async def __call__(self, request: Request) -> str:
        return bearer_token_of(request)


def bearer_token_of(request: Request) -> str:
    """The token of `Authorization: Bearer <token>`, or 401 naming what is wrong with the header."""
    header = request.headers.get("Authorization")
    if not header:
        raise ApiError(401, "missing_token", "the Authorization header is missing",
                       headers=dict(MISSING_TOKEN_HEADERS))
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "missing_token", "the Authorization header must be 'Bearer <token>'",
                       headers=dict(MISSING_TOKEN_HEADERS))
    return token


bearer_token = BearerToken()
# What `Security(bearer_token)` would put into an operation: the lean routes (app/api/lean_route.py), which
# take no dependencies, state it in their `openapi_extra`; `document_bearer_scheme` defines the scheme.
BEARER_SECURITY = {"security": [{bearer_token.scheme_name: []}]}


def document_bearer_scheme(application: FastAPI) -> None:
    """Make `application.openapi()` define the bearer scheme `BEARER_SECURITY` refers to: FastAPI adds a
    scheme only for the routes that use it as a dependency, and an app may have none left."""
    generate = application.openapi

    def openapi() -> dict[str, Any]:
        if application.openapi_schema is None:
            schemes = generate().setdefault("components", {}).setdefault("securitySchemes", {})
            schemes.setdefault(bearer_token.scheme_name,
                               bearer_token.model.model_dump(mode="json", by_alias=True, exclude_none=True))
        return application.openapi_schema

    application.openapi = openapi  # type: ignore[method-assign]


def install_security(
    app: FastAPI,
    settings: Settings,
    *,
    tokens: TokenService | None = None,
    limiter: LeakyBucketLimiter | None = None,
) -> Services:
    """Attach the service container to `app.state.services` (unless already there) with the token
    service and the rate limiter.

    `tokens` and `limiter` replace the defaults, e.g. to inject a clock in tests.
    """
    tokens = tokens if tokens is not None else TokenService(settings)
    limiter = limiter if limiter is not None else LeakyBucketLimiter()
    services: Services | None = getattr(app.state, "services", None)
    if services is None:
        services = app.state.services = Services(settings=settings, tokens=tokens, limiter=limiter)
    else:
        services.tokens, services.limiter = tokens, limiter
    return services


def require_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits requests whose token carries `scope` and that fit the client's rate limit.

    Use as `principal: Annotated[Principal, Depends(require_scope("ingest"))]` or in `dependencies=[...]`.
    The principal is also left on `request.state.principal` (e.g. for access logs).
    """

    async def authorize(
        request: Request, response: Response, token: Annotated[str, Security(bearer_token)]
    ) -> Principal:
        principal, decision = await admit(request, token, scope)
        response.headers.update(rate_limit_headers(decision))
        return principal

    authorize.__name__ = f"require_scope_{scope}"
    return authorize


async def admit(request: Request, token: str, scope: str) -> tuple[Principal, Decision]:
    """The guard itself, for `require_scope` and for the hot ingest handlers, which call it directly
    (app/api/ingest.py: FastAPI would otherwise solve two dependencies per request for it): the token is
    verified, must carry `scope`, and the request is counted against the client's bucket. Returns the
    principal (also left on `request.state.principal`) and the bucket's state for the `X-RateLimit-*`
    headers; raises ApiError 401/403/429."""
    services: Services = request.app.state.services
    principal: Principal = services.tokens.verify(token)
    if scope not in principal.scopes:
        raise ApiError(
            403, "insufficient_scope", f"the token lacks the scope {scope!r} this operation requires",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
        )
    # Guards stacked on one request (router + route) must count the request once, not once per guard.
    # `request.state`'s own dict: a `State` attribute that is not there yet would cost an exception.
    request_state: dict = request.scope.setdefault("state", {})
    decision: Decision | None = request_state.get("rate_limit")
    if decision is None:
        decision = await _count_request(services, principal)
        request_state["rate_limit"] = decision
    request_state["principal"] = principal
    return principal, decision


async def admit_lean(request: Request, scope: str) -> dict[str, str]:
    """The guard for a lean handler (app/api/lean_route.py: no dependencies): the bearer token of the
    request admitted for `scope`; returns the `X-RateLimit-*` headers for its response."""
    _, decision = await admit(request, bearer_token_of(request), scope)
    return rate_limit_headers(decision)


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """The `X-RateLimit-*` headers describing a client's bucket, plus `Retry-After` when refused."""
    headers = {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset_seconds),
    }
    if not decision.allowed:
        headers["Retry-After"] = str(decision.retry_after)
    return headers


async def check_bucket(services: Services, key: str, rate_per_second: float, burst: int) -> Decision:
    """One request against `key`'s bucket: the shared store's when the service has one (every task
    counts against it), else this process's."""
    shared = services.shared_limiter
    if shared is not None:
        return await shared.check(key, rate_per_second, burst)
    return services.limiter.check(key, rate_per_second, burst)


async def _count_request(services: Services, principal: Principal) -> Decision:
    client = _client_config(services, principal.client_id)
    if client is None:
        raise ApiError(401, "invalid_token", f"client {principal.client_id!r} is no longer configured",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    decision = await check_bucket(services, client.client_id, client.rate_per_second, client.burst)
    if not decision.allowed:
        raise ApiError(
            429, "rate_limited",
            f"client {client.client_id!r} exceeded its rate limit of {client.rate_per_second:g} requests "
            f"per second (burst {client.burst}); retry after {decision.retry_after} s",
            headers=rate_limit_headers(decision),
        )
    return decision


class _ClientIndex:
    """Client configs by id, built once per `settings.clients` tuple."""

    def __init__(self, clients: tuple[ClientConfig, ...]) -> None:
        self.source = clients
        self.by_id = {client.client_id: client for client in clients}


def _client_config(services: Services, client_id: str) -> ClientConfig | None:
    clients = services.settings.clients
    index: _ClientIndex | None = services.lazy.get("security_client_index")
    # Identity check: O(1) per request, and a replaced settings object is picked up.
    if index is None or index.source is not clients:
        index = _ClientIndex(clients)
        services.lazy["security_client_index"] = index
    return index.by_id.get(client_id)
