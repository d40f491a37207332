"""Liveness (/health: the process serves HTTP) and readiness (/ready: accepting traffic)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from app import __version__
from app.api.deps import ServicesDep
from app.storage import repository

router = APIRouter(tags=["health"])
DATABASE_CHECK_SECONDS = 1.0


@router.get("/health", summary="Liveness probe (ALB target health check)")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get(
    "/ready",
    summary="Readiness: 503 while starting or draining after SIGTERM",
    description="The database state is reported but does not make the service unready: while it is down, "
    "readings go to the dead-letter store and are answered 202.",
    responses={503: {"description": "starting up or shutting down"}},
)
async def ready(services: ServicesDep, response: Response) -> dict[str, str]:
    try:
        await asyncio.wait_for(repository.ping(services.engine), DATABASE_CHECK_SECONDS)
        database = "ok"
    except Exception:
        database = "unavailable"
    if not services.accepting:
        response.status_code = 503
        return {"status": "draining" if services.started else "starting", "database": database}
    return {"status": "ready", "database": database}
