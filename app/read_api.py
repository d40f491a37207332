"""The read-only API: `create_read_app(settings)` serves the service's health, token and query endpoints.

It reuses the ingestion service's routers, security, error format and middleware unchanged, with a
minimal lifespan: read-only storage (a database engine, app/storage/backends.py) and the query service.
Nothing here writes: no ingest routes, no group commit, no outbox relay, no dead-letter replay, no
migrations (the ingestion service owns the schema). The read-API Lambda (lambda/api/handler.py) serves it through mangum.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import auth, data, health
from app.container import Services
from app.factory import build_app
from app.services.queries import QueryService
from app.settings import Settings
from app.storage.backends import open_read_only_storage

READ_ROUTERS = (health.router, auth.router, data.router)


def create_read_app(settings: Settings) -> FastAPI:
    """The read-only application: same endpoints, auth and errors as the service's, minus writes."""
    return build_app(
        settings,
        title="Sensor read API",
        summary="Read-only view of the sensor service: readings, per-tag statistics and anomaly counts.",
        lifespan=_lifespan,
        routers=READ_ROUTERS,
    )


@asynccontextmanager
async def _lifespan(application: FastAPI) -> AsyncIterator[None]:
    services: Services = application.state.services
    storage = open_read_only_storage(services.settings)
    services.engine = storage.engine
    services.queries = QueryService(storage.reads)
    services.started = True
    services.accepting = True
    try:
        yield
    finally:
        services.accepting = False
        await storage.close()
