"""The service skeleton answers its liveness probe over ASGI."""

from __future__ import annotations

import httpx
import pytest

from app import __version__
from app.main import create_app


@pytest.mark.anyio
async def test_health_reports_ok_and_version() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


@pytest.mark.anyio
async def test_unknown_path_is_404() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/nope")
    assert response.status_code == 404


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
