"""The dashboard's sign-in and session over HTTP (the real `create_app` over ASGI): the form sets an HttpOnly,
SameSite=Strict cookie (Secure over HTTPS), a token in the URL is not accepted, cross-site posts are refused,
the cookie opens only /dashboard*, each viewer has its own bucket and stream cap, and the vendored libraries
are pinned and served. The browser half is tests/browser/test_dashboard.py."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.api.pages import PAGE_NAMES, page_html
from app.api.static import STATIC_DIR
from app.main import create_app
from app.security.sessions import COOKIE_NAME
from app.settings import ClientConfig, Settings, sha256_hex
from tests.conftest import REPO_ROOT

DASHBOARD = {"client_id": "dashboard", "client_secret": "dashboard-local-secret"}
VENDORED = ("/static/vendor/chart.umd.min.js", "/static/vendor/chartjs-adapter-date-fns.bundle.min.js",
            "/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/vendor/swagger-ui/swagger-ui.css")
ANY_URL = re.compile(r"https?://", re.IGNORECASE)
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db", dead_letter_dir=tmp_path / "dead-letter",
                    dashboard_burst=3, dashboard_rate_per_second=0.01, dashboard_streams_per_viewer=1)


@pytest.fixture
def application(settings: Settings) -> FastAPI:
    return create_app(settings)


async def make_client(application: FastAPI, base_url: str = "http://test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=base_url, timeout=10)


@pytest.fixture
async def client(application: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with await make_client(application) as http:
        yield http


async def sign_in(client: httpx.AsyncClient, credentials: dict[str, str] = DASHBOARD,
                  headers: dict[str, str] = SAME_ORIGIN) -> httpx.Response:
    return await client.post("/dashboard/sign-in", data=credentials, headers=headers)


@pytest.mark.anyio
async def test_signed_out_page_redirects_to_the_form_and_a_url_token_is_not_accepted(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard")
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/sign-in"
    token = (await client.post("/auth/token", json=DASHBOARD)).json()["access_token"]
    assert (await client.get("/dashboard", params={"token": token})).status_code == 303
    assert (await client.get("/dashboard", headers={"Authorization": f"Bearer {token}"})).status_code == 303
    form = await client.get("/dashboard/sign-in")
    assert form.status_code == 200 and 'action="/dashboard/sign-in"' in form.text and 'method="post"' in form.text


@pytest.mark.anyio
async def test_sign_in_sets_an_httponly_strict_cookie_scoped_to_the_dashboard(client: httpx.AsyncClient) -> None:
    response = await sign_in(client)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/dashboard"} <= attributes
    assert "secure" not in attributes, "plain HTTP: a Secure cookie would never come back"
    page = await client.get("/dashboard")
    assert page.status_code == 200 and 'src="/static/dashboard.js"' in page.text
    assert page.headers["Cache-Control"] == "no-store"
    # The cookie is for the dashboard only: the API still wants a bearer token.
    assert (await client.get("/sensors/stats")).status_code == 401


@pytest.mark.anyio
async def test_cookie_is_secure_when_served_over_https(application: FastAPI) -> None:
    async with await make_client(application, "https://dashboard.example") as client:
        cookie = (await sign_in(client)).headers["set-cookie"].lower()
    assert "; secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie


@pytest.mark.anyio
@pytest.mark.parametrize(("credentials", "reason"), [
    ({"client_id": "dashboard", "client_secret": "wrong"}, "credentials"),
    ({"client_id": "nobody", "client_secret": "dashboard-local-secret"}, "credentials"),
    ({"client_id": "ingest-only", "client_secret": "ingest-only-secret"}, "scope"),
])
async def test_failed_sign_in_goes_back_to_the_form_without_a_cookie(tmp_path: Path, credentials: dict[str, str],
                                                                     reason: str) -> None:
    clients = (*Settings().clients, ClientConfig(client_id="ingest-only", scopes=("ingest",),
                                                 secret_sha256=sha256_hex("ingest-only-secret")))
    application = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db", clients=clients))
    async with await make_client(application) as client:
        response = await sign_in(client, credentials)
    assert response.status_code == 303
    assert response.headers["location"] == f"/dashboard/sign-in?failed={reason}"
    assert "set-cookie" not in response.headers


@pytest.mark.anyio
@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "https://evil.example"},
])
async def test_cross_site_form_posts_are_refused(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await sign_in(client, headers=headers)
    assert response.status_code == 403 and response.json()["error"]["code"] == "cross_origin"
    assert "set-cookie" not in response.headers
    await sign_in(client)
    forced = await client.post("/dashboard/sign-out", headers=headers)
    assert forced.status_code == 403
    assert (await client.get("/dashboard")).status_code == 200, "still signed in"


@pytest.mark.anyio
async def test_sign_out_clears_the_cookie(client: httpx.AsyncClient) -> None:
    await sign_in(client)
    response = await client.post("/dashboard/sign-out", headers=SAME_ORIGIN)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/sign-in"
    assert 'Max-Age=0' in response.headers["set-cookie"] or "expires=" in response.headers["set-cookie"].lower()
    assert (await client.get("/dashboard")).status_code == 303


@pytest.mark.anyio
async def test_stream_and_session_need_a_signed_in_viewer(client: httpx.AsyncClient) -> None:
    for path in ("/dashboard/stream", "/dashboard/session"):
        response = await client.get(path)
        assert response.status_code == 401 and response.json()["error"]["code"] == "not_signed_in"
    await sign_in(client)
    assert (await client.get("/dashboard/stream", params={"range": "7d"})).status_code == 422


@pytest.mark.anyio
async def test_each_viewer_has_its_own_bucket(application: FastAPI) -> None:
    """burst 3 at ~0 refill (fixture): the first viewer runs out, a second viewer is unaffected."""
    async with await make_client(application) as first, await make_client(application) as second:
        await sign_in(first)
        await sign_in(second)
        answers = [(await first.get("/dashboard/session")).status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429]
        assert (await second.get("/dashboard/session")).status_code == 200


@pytest.mark.anyio
async def test_static_assets_and_vendored_libraries_are_served_without_a_session(client: httpx.AsyncClient) -> None:
    for path in ("/static/dashboard.js", "/static/dashboard.css", "/static/sign-in.js", "/static/docs-init.js"):
        assert (await client.get(path)).status_code == 200, path
    missing = [path for path in VENDORED if not (STATIC_DIR / path.removeprefix("/static/")).exists()]
    if missing:
        pytest.skip(f"{missing} missing: run `make vendor`")
    for path in VENDORED:
        assert (await client.get(path)).status_code == 200, path


@pytest.mark.anyio
@pytest.mark.parametrize(("path", "title"), [("/dashboard/sign-in", "Sensor readings · sign in"),
                                             ("/docs", "Sensor platform API · docs")])
async def test_each_page_is_served_as_one_whole_document_in_the_shared_shell(
        client: httpx.AsyncClient, path: str, title: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert html.startswith('<!doctype html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">')
    assert html.endswith("</body>\n</html>\n"), html[-40:]
    for tag in ("<head>", "</head>", "<body", "</body>", "<title>", "<meta charset"):
        assert html.count(tag) == 1, f"{path}: {tag} appears {html.count(tag)} times"
    assert f"<title>{title}</title>" in html and "$page" not in html


def test_an_unknown_page_name_is_refused_with_the_names_there_are() -> None:
    with pytest.raises(LookupError, match="dashboard, sign-in, docs"):
        page_html("admin")


@pytest.mark.parametrize("page_file", PAGE_NAMES)
def test_pages_load_only_same_origin_files_and_have_no_inline_script(page_file: str) -> None:
    html = page_html(page_file).decode()
    assert not ANY_URL.search(html), f"{page_file} loads something from another origin (CDN?)"
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all('src="/static/' in attributes and not body.strip() for attributes, body in scripts)
    assert not re.search(r"\son[a-z]+=", html), f"{page_file} has an inline event handler"


@pytest.mark.parametrize("package", ["chart.js", "chartjs-adapter-date-fns", "date-fns", "swagger-ui-dist"])
def test_page_libraries_are_pinned_exactly_and_locked_without_registry_urls(package: str) -> None:
    version = json.loads((REPO_ROOT / "package.json").read_text())["dependencies"][package]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{package} must be an exact pin, got {version!r}"
    locked = json.loads((REPO_ROOT / "package-lock.json").read_text())["packages"][f"node_modules/{package}"]
    assert locked["version"] == version
    assert "integrity" in locked
