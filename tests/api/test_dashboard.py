"""GET /dashboard: read-scope guard (header or ?token=), a page that loads the vendored Chart.js and no CDN,
and the /static mount that serves its assets. Runs the real `create_app` over ASGI (no lifespan: neither
the page nor token issuance touches the database)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.api.dashboard import STATIC_DIR
from app.main import create_app
from app.security.tokens import TokenService
from app.settings import Settings
from tests.conftest import REPO_ROOT

DASHBOARD = {"client_id": "dashboard", "client_secret": "dashboard-local-secret"}
SIMULATOR = {"client_id": "simulator", "client_secret": "simulator-local-secret"}
VENDORED_CHART_JS = "/static/vendor/chart.umd.min.js"
ANY_URL = re.compile(r"https?://", re.IGNORECASE)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db", dead_letter_dir=tmp_path / "dead-letter")


@pytest.fixture
def application(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(application: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=10) as http:
        yield http


async def issue(client: httpx.AsyncClient, credentials: dict[str, str], scope: str | None = None) -> str:
    response = await client.post("/auth/token", json={**credentials, **({"scope": scope} if scope else {})})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.mark.anyio
async def test_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.anyio
async def test_read_token_in_query_serves_the_page_with_vendored_chart_js(client: httpx.AsyncClient) -> None:
    token = await issue(client, DASHBOARD)
    response = await client.get("/dashboard", params={"token": token})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert f'src="{VENDORED_CHART_JS}"' in page
    assert 'src="/static/dashboard.js"' in page
    assert not ANY_URL.search(page), "the page must not load anything from another origin (CDN)"
    assert token not in page, "the token stays in the URL; the page itself never embeds it"
    # The URL carries a token: no caching, no Referer, and scripts only from this origin.
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


@pytest.mark.anyio
async def test_read_token_in_authorization_header_serves_the_page(client: httpx.AsyncClient) -> None:
    token = await issue(client, DASHBOARD)
    response = await client.get("/dashboard", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert VENDORED_CHART_JS in response.text


@pytest.mark.anyio
async def test_ingest_only_token_is_403(client: httpx.AsyncClient) -> None:
    token = await issue(client, SIMULATOR, scope="ingest")
    response = await client.get("/dashboard", params={"token": token})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


@pytest.mark.anyio
async def test_expired_or_forged_query_token_is_401(client: httpx.AsyncClient, settings: Settings) -> None:
    two_hours_ago = time.time() - 7200
    expired = TokenService(settings, clock=lambda: two_hours_ago).issue("dashboard", "dashboard-local-secret", None)
    for token in (expired["access_token"], "not-a-jwt"):
        response = await client.get("/dashboard", params={"token": token})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_token"


@pytest.mark.anyio
async def test_static_assets_are_served_without_a_token(client: httpx.AsyncClient) -> None:
    script = await client.get("/static/dashboard.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "Authorization: `Bearer ${token}`" in script.text, "the API is called with the token in the header"
    assert "console." not in script.text, "the script must not log (and so never logs the token)"
    assert not ANY_URL.search(script.text)
    style = await client.get("/static/dashboard.css")
    assert style.status_code == 200
    assert "text/css" in style.headers["content-type"]


@pytest.mark.anyio
async def test_vendored_chart_js_is_served_after_make_vendor(client: httpx.AsyncClient) -> None:
    if not (STATIC_DIR / "vendor" / "chart.umd.min.js").exists():
        pytest.skip("app/static/vendor/chart.umd.min.js is missing: run `make vendor`")
    response = await client.get(VENDORED_CHART_JS)
    assert response.status_code == 200
    assert "Chart" in response.text[:2000]


def test_chart_js_is_pinned_exactly_and_locked_without_registry_urls() -> None:
    package = json.loads((REPO_ROOT / "package.json").read_text())
    version = package["dependencies"]["chart.js"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"chart.js must be an exact pin, got {version!r}"
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    locked = lock["packages"]["node_modules/chart.js"]
    assert locked["version"] == version
    assert "integrity" in locked
    assert "resolved" not in locked
