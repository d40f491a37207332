"""Typed FastAPI dependencies: what a handler needs, read from the container on `app.state.services`
(app/container.py), e.g. `async def handler(tokens: TokenServiceDep)`.

Every provider is `async def` and only reads an attribute: FastAPI awaits it on the event loop (a plain
`def` dependency would be sent to the threadpool on every request), and the container is built at
start-up, so there is no per-request construction. Each dependency still costs FastAPI ~10 µs per
request to solve (measured on the 2-core machine), so a handler needing several services takes the
container itself (`ServicesDep`) rather than one provider per service, and the hot routes (ingest and
reads) take no dependencies at all (app/api/lean_route.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from app.container import Services
from app.observability.metrics import Metrics
from app.security.tokens import TokenService


async def services(request: Request) -> Services:
    return request.app.state.services


def _provider(field: str) -> Callable[[Request], Awaitable[Any]]:
    """An async provider of the container's `field`."""

    async def provide(request: Request) -> Any:
        return getattr(request.app.state.services, field)

    provide.__name__ = provide.__qualname__ = f"provide_{field}"
    return provide


token_service = _provider("tokens")
metrics = _provider("metrics")

ServicesDep = Annotated[Services, Depends(services)]
TokenServiceDep = Annotated[TokenService, Depends(token_service)]
MetricsDep = Annotated[Metrics, Depends(metrics)]
