"""The read-only API: `create_read_app(settings)` serves the service's health, token and query endpoints.

It reuses the ingestion service's routers, security, error format and middleware unchanged, with a
minimal lifespan: a database engine and the query service. Nothing here writes: no ingest routes, no
group commit, no outbox relay, no dead-letter replay, no migrations (the ingestion service owns the
schema). The read-API Lambda (lambda/api/handler.py) serves it through mangum.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import auth, data, health
from app.factory import build_app
from app.services.queries import QueryService
from app.settings import Settings
from app.storage.database import create_engine

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
    state = application.state
    engine = create_engine(state.settings)
    state.engine = engine
    state.queries = QueryService(engine)
    state.started = True
    state.accepting = True
    try:
        yield
    finally:
        state.accepting = False
        await engine.dispose()
