"""ASGI application factory: `uvicorn app.main:app`."""

from __future__ import annotations

from fastapi import FastAPI

from app import __version__
from app.api import health


def create_app() -> FastAPI:
    application = FastAPI(
        title="Sensor ingestion service",
        version=__version__,
    )
    application.include_router(health.router)
    return application


app = create_app()
