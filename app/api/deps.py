"""Typed FastAPI dependencies: what a handler needs, read from the container on `app.state.services`
(app/container.py), e.g. `async def handler(ingest: IngestServiceDep, rules: ReadingRulesDep)`.

Every provider is `async def` and only reads an attribute: FastAPI awaits it on the event loop (a plain
`def` dependency would be sent to the threadpool on every request), and the container is built at
start-up, so there is no per-request construction. FastAPI calls each provider at most once per request.
"""

from __future__ import annotations

from typing import Annotated

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


async def settings(request: Request) -> Settings:
    return request.app.state.services.settings


async def token_service(request: Request) -> TokenService:
    return request.app.state.services.tokens


async def metrics(request: Request) -> Metrics:
    return request.app.state.services.metrics


async def reading_rules(request: Request) -> ReadingRules:
    return request.app.state.services.rules


async def ingest_service(request: Request) -> IngestService:
    return request.app.state.services.ingest


async def query_service(request: Request) -> QueryService:
    return request.app.state.services.queries


ServicesDep = Annotated[Services, Depends(services)]
SettingsDep = Annotated[Settings, Depends(settings)]
TokenServiceDep = Annotated[TokenService, Depends(token_service)]
MetricsDep = Annotated[Metrics, Depends(metrics)]
ReadingRulesDep = Annotated[ReadingRules, Depends(reading_rules)]
IngestServiceDep = Annotated[IngestService, Depends(ingest_service)]
QueryServiceDep = Annotated[QueryService, Depends(query_service)]
