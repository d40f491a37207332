"""Typed FastAPI dependencies: what a handler needs, read from the container on `app.state.services`
(app/container.py), e.g. `async def handler(ingest: IngestServiceDep, rules: ReadingRulesDep)`.

Every provider is `async def` and only reads an attribute: FastAPI awaits it on the event loop (a plain
`def` dependency would be sent to the threadpool on every request), and the container is built at
start-up, so there is no per-request construction. FastAPI calls each provider at most once per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from app.container import Services
from app.observability.metrics import Metrics
from app.readings import ReadingRules
from app.security.tokens import TokenService
from app.services.ingest import IngestService
from app.services.queries import QueryService
from app.settings import Settings


async def services(request: Request) -> Services:
    return request.app.state.services


def _provider(field: str) -> Callable[[Request], Awaitable[Any]]:
    """An async provider of the container's `field`."""

    async def provide(request: Request) -> Any:
        return getattr(request.app.state.services, field)

    provide.__name__ = provide.__qualname__ = f"provide_{field}"
    return provide


settings = _provider("settings")
token_service = _provider("tokens")
metrics = _provider("metrics")
reading_rules = _provider("rules")
ingest_service = _provider("ingest")
query_service = _provider("queries")

ServicesDep = Annotated[Services, Depends(services)]
SettingsDep = Annotated[Settings, Depends(settings)]
TokenServiceDep = Annotated[TokenService, Depends(token_service)]
MetricsDep = Annotated[Metrics, Depends(metrics)]
ReadingRulesDep = Annotated[ReadingRules, Depends(reading_rules)]
IngestServiceDep = Annotated[IngestService, Depends(ingest_service)]
QueryServiceDep = Annotated[QueryService, Depends(query_service)]
