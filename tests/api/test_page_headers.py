"""Every page the service serves carries the browser headers (app/security/page_headers.py): a CSP that
admits only this origin's scripts (no inline script, no CDN), Referrer-Policy and X-Content-Type-Options.
"Every page" is every GET route of the app without path parameters, requested signed in, plus the static
HTML files: a new page cannot be added without this test seeing it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from app.api.static import STATIC_DIR
from app.main import create_app
from app.read_api import create_read_app
from app.settings import Settings

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


def assert_page_headers(response, where: str) -> None:
    policy = response.headers.get("content-security-policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert directives.get("script-src") == ["'self'"], f"{where}: CSP script-src {directives.get('script-src')}"
    assert directives.get("default-src") == ["'none'"], where
    assert directives.get("frame-ancestors") == ["'none'"], where
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, where
    assert response.headers.get("referrer-policy") == "no-referrer", where
    assert response.headers.get("x-content-type-options") == "nosniff", where


def html_get_paths(app) -> list[str]:
    """GET paths of every route, through included routers (FastAPI keeps them as nested router objects)."""
    paths: list[str] = []

    def walk(routes, prefix: str) -> None:
        for route in routes:
            nested = getattr(route, "original_router", None)
            if nested is not None:
                walk(nested.routes, prefix + (getattr(route.include_context, "prefix", "") or ""))
            elif isinstance(route, APIRoute | Route) and "GET" in (route.methods or ()) and "{" not in route.path:
                paths.append(prefix + route.path)

    walk(app.routes, "")
    return sorted(paths)


@pytest.mark.parametrize("factory", [create_app, create_read_app], ids=["service", "read-api"])
def test_every_html_response_carries_the_page_headers(tmp_path: Path, factory) -> None:
    app = factory(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db", dead_letter_dir=tmp_path / "dl"))
    with TestClient(app, follow_redirects=False) as client:
        if factory is create_app:
            client.post("/dashboard/sign-in", data={"client_id": "dashboard", "client_secret": "dashboard-local-secret"},
                        headers=SAME_ORIGIN)
        html_pages = []
        for path in html_get_paths(app):
            if path == "/dashboard/stream":
                continue  # an endless event stream, not a page (its headers are checked below)
            response = client.get(path)
            assert response.headers.get("x-content-type-options") == "nosniff", path
            assert response.headers.get("referrer-policy") == "no-referrer", path
            if response.headers.get("content-type", "").startswith("text/html"):
                assert_page_headers(response, path)
                html_pages.append(path)
        for page in sorted(STATIC_DIR.glob("*.html")):
            response = client.get(f"/static/{page.name}")
            assert_page_headers(response, f"/static/{page.name}")
    expected = {"/docs"} | ({"/dashboard", "/dashboard/sign-in"} if factory is create_app else set())
    assert set(html_pages) == expected


def test_fastapi_cdn_pages_are_off(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db"))
    with TestClient(app) as client:
        assert client.get("/redoc").status_code == 404
        docs = client.get("/docs").text
        assert "cdn" not in docs.lower() and "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs
