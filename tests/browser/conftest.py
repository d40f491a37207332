"""Real headless Chromium (Debian's `chromium`, installed by `make chromium`) driven by Playwright, against
the app served by uvicorn as `make up` serves it. pytest-playwright's `browser` fixture is pointed at the
system browser: `playwright install` cannot download browsers here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, Request, Response

from devstack.processes import free_port, stop
from loadtests.harness.app_processes import start_app, wait_ready

CHROMIUM = Path("/usr/bin/chromium")
DASHBOARD = {"client_id": "dashboard", "client_secret": "dashboard-local-secret"}
LOADTEST = {"client_id": "loadtest", "client_secret": "loadtest-local-secret"}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (make test installs it)")
    # Chromium's sandbox refuses to start as root (containers, CI).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": args}


@dataclass
class RunningApp:
    base: str
    port: int
    workdir: Path
    database_url: str
    process: object = None

    def restart(self) -> None:
        stop(self.process, timeout=30)
        self.process = start_app("app", self.port, self.database_url, self.workdir)
        wait_ready(self.port, self.process)

    def token(self, credentials: dict[str, str] = LOADTEST) -> str:
        response = httpx.post(f"{self.base}/auth/token", json=credentials, timeout=10)
        response.raise_for_status()
        return response.json()["access_token"]


@pytest.fixture(scope="module")
def running_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """`uvicorn app.main:app` on a fresh SQLite file, on a free port."""
    workdir = tmp_path_factory.mktemp("app")
    port = free_port()
    database_url = f"sqlite+aiosqlite:///{workdir / 'sensors.db'}"
    app = RunningApp(base=f"http://127.0.0.1:{port}", port=port, workdir=workdir, database_url=database_url)
    app.process = start_app("app", port, database_url, workdir)
    try:
        wait_ready(port, app.process)
        yield app
    finally:
        stop(app.process, timeout=30)


@dataclass
class PageLog:
    """What a page did that a person would notice: console errors, failed or refused requests."""

    console_errors: list[str] = field(default_factory=list)
    bad_responses: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> PageLog:
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        page.on("response", self._response)
        page.on("requestfailed", self._failed)
        return self

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.bad_responses.append(f"{response.status} {response.request.method} {response.url}")

    def _failed(self, request: Request) -> None:
        # The stream is aborted on purpose when the page closes or changes its range.
        if "/dashboard/stream" not in request.url:
            self.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    def assert_clean(self) -> None:
        assert not self.console_errors, self.console_errors[:10]
        assert not self.bad_responses, self.bad_responses[:10]
        assert not self.failed_requests, self.failed_requests[:10]


def sign_in(page: Page, base: str, credentials: dict[str, str] = DASHBOARD) -> None:
    page.goto(f"{base}/dashboard")
    page.wait_for_url(f"{base}/dashboard/sign-in")
    page.fill("input[name=client_id]", credentials["client_id"])
    page.fill("input[name=client_secret]", credentials["client_secret"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last. pytest groups the tests of pytest-playwright's parametrized `browser_name`
    wherever it likes, and Playwright's sync API keeps its event loop running in the main thread until the
    session ends: any asyncio test after them would fail with "asyncio.run() cannot be called from a running
    event loop"."""
    browser_dir = Path(__file__).resolve().parent
    items.sort(key=lambda item: browser_dir in Path(str(item.path)).resolve().parents)
