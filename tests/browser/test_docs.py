"""/docs in headless Chromium: Swagger UI from the image (no request leaves the origin), no console error
under the page's CSP, and "Try it out" → "Execute" on GET /health gets the service's answer."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PageLog, RunningApp

pytestmark = pytest.mark.slow


def test_docs_render_and_try_it_out_on_health(page: Page, running_app: RunningApp) -> None:
    log = PageLog().watch(page)
    origins: set[str] = set()
    page.on("request", lambda request: origins.add(request.url.split("/")[2]))
    page.goto(f"{running_app.base}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Sensor ingestion service")

    operation = page.locator("#operations-health-health_health_get")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    with page.expect_response(f"{running_app.base}/health") as answer:
        operation.get_by_role("button", name="Execute").click()
    assert answer.value.status == 200
    expect(operation.locator(".live-responses-table tbody .response-col_status").first).to_contain_text("200")
    expect(operation.locator(".live-responses-table .microlight").first).to_contain_text('"status"')

    assert origins == {f"127.0.0.1:{running_app.port}"}, f"requests left the origin (CDN?): {origins}"
    log.assert_clean()
