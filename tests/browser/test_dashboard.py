"""The live dashboard in headless Chromium against the real app (uvicorn, SQLite): sign-in by form with an
HttpOnly cookie (no token in any URL), one chart per tag on a time axis, a reading POSTed by the test on the
chart within 2 s through the server's stream, an anomaly drawn as a red point, counters equal to
/sensors/stats, the device picker and the range, and a reconnect after the server restarts.

These fail when dashboard.js is broken (no charts, no counters) or the stream stops (nothing new arrives)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DASHBOARD, PageLog, RunningApp, sign_in

pytestmark = pytest.mark.slow
DEVICE = "browser-1"
OTHER_DEVICE = "browser-2"
ARRIVAL_MS = 2000  # the bar: a new reading is on the chart within 2 s

CHART_DATA = """(tag) => {
  const canvas = document.querySelector(`section[data-tag="${tag}"] canvas`);
  const chart = canvas && Chart.getChart(canvas);
  if (!chart) return null;
  return {
    xType: chart.options.scales.x.type, xMin: chart.scales.x.min, xMax: chart.scales.x.max,
    datasets: chart.data.datasets.map((d) => ({label: d.label, color: d.backgroundColor,
                                               points: d.data.map((p) => [p.x, p.y])})),
  };
}"""
HAS_POINT = """([tag, x, y, label]) => {
  const canvas = document.querySelector(`section[data-tag="${tag}"] canvas`);
  const chart = canvas && Chart.getChart(canvas);
  return !!chart && chart.data.datasets.some((d) => (!label || d.label === label) &&
                                                    d.data.some((p) => p.x === x && p.y === y));
}"""
# The pixel the chart drew at the point's position (device pixels): what a person sees.
PIXEL_AT = """([tag, x, y]) => {
  const chart = Chart.getChart(document.querySelector(`section[data-tag="${tag}"] canvas`));
  const ratio = chart.currentDevicePixelRatio;
  const px = Math.round(chart.scales.x.getPixelForValue(x) * ratio);
  const py = Math.round(chart.scales.y.getPixelForValue(y) * ratio);
  return Array.from(chart.ctx.getImageData(px, py, 1, 1).data);
}"""


def ingest(app: RunningApp, token: str, *, tag: str, value: float, at: datetime, device: str = DEVICE) -> dict:
    response = httpx.post(f"{app.base}/ingest", headers={"Authorization": f"Bearer {token}"}, timeout=10,
                          json={"timestamp": at.isoformat(), "tag": tag, "value": value, "device_id": device})
    assert response.status_code == 201, response.text
    return response.json()


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def stats(app: RunningApp, token: str) -> list[dict]:
    response = httpx.get(f"{app.base}/sensors/stats", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def seeded(running_app: RunningApp) -> str:
    """Two tags, two devices, a steady history: enough samples for the z-score to judge the next one."""
    token = running_app.token()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=90)
    for index in range(20):
        at = start + timedelta(seconds=index * 3)
        ingest(running_app, token, tag="temperature", value=20.0 + (index % 3) * 0.1, at=at)
        ingest(running_app, token, tag="humidity", value=50.0 + (index % 2) * 0.2, at=at)
        ingest(running_app, token, tag="temperature", value=25.0 + (index % 2) * 0.1, at=at, device=OTHER_DEVICE)
    return token


def test_sign_in_sets_an_httponly_cookie_and_no_url_carries_a_token(page: Page, running_app: RunningApp) -> None:
    log = PageLog().watch(page)
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    page.goto(f"{running_app.base}/dashboard")
    expect(page).to_have_url(f"{running_app.base}/dashboard/sign-in")

    page.fill("input[name=client_secret]", "wrong-secret")
    page.click("button[type=submit]")
    expect(page.locator("#failure")).to_have_text("Unknown client or wrong secret.")

    sign_in(page, running_app.base)
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"
    assert not cookie["secure"], "plain-HTTP origin: Secure only when the page was served over HTTPS"
    assert page.evaluate("document.cookie") == "", "scripts cannot read the session"
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    assert all("token" not in url and cookie["value"] not in url for url in visited), visited
    # The wrong secret was answered by the form (303 back to it), not by an HTTP error page.
    assert not log.bad_responses


def test_charts_readings_anomaly_and_counters(page: Page, running_app: RunningApp, seeded: str) -> None:
    log = PageLog().watch(page)
    sign_in(page, running_app.base)
    tags = sorted(row["tag"] for row in stats(running_app, seeded))
    expect(page.locator("section.chart")).to_have_count(len(tags))
    assert page.locator("section.chart h2").all_inner_texts() == tags
    chart = page.evaluate(CHART_DATA, "temperature")
    assert chart["xType"] == "time"
    assert chart["xMax"] - chart["xMin"] == pytest.approx(5 * 60 * 1000, rel=0.02), "the 5 min range by default"
    assert {dataset["label"] for dataset in chart["datasets"]} == {DEVICE, OTHER_DEVICE, "anomaly"}

    # A new reading, pushed by the server: on the chart within 2 s of its 201.
    now = datetime.now(UTC).replace(microsecond=0)
    answer = ingest(running_app, seeded, tag="temperature", value=20.1, at=now)
    assert not answer["is_anomaly"]
    page.wait_for_function(HAS_POINT, arg=["temperature", epoch_ms(now), 20.1, DEVICE], timeout=ARRIVAL_MS)

    # An anomaly: a red point on top of the line.
    spike_at = now + timedelta(seconds=1)
    assert ingest(running_app, seeded, tag="temperature", value=60.0, at=spike_at)["is_anomaly"]
    page.wait_for_function(HAS_POINT, arg=["temperature", epoch_ms(spike_at), 60.0, "anomaly"], timeout=ARRIVAL_MS)
    anomalies = next(d for d in page.evaluate(CHART_DATA, "temperature")["datasets"] if d["label"] == "anomaly")
    assert anomalies["color"] == "#dc2626"
    page.wait_for_timeout(200)  # the next animation frame has painted it
    red, green, blue, alpha = page.evaluate(PIXEL_AT, ["temperature", epoch_ms(spike_at), 60.0])
    assert red > 180 and green < 100 and blue < 100 and alpha > 200, (red, green, blue, alpha)

    # Counters: the same sums as GET /sensors/stats.
    expected = stats(running_app, seeded)
    total, anomaly_total = sum(r["count"] for r in expected), sum(r["anomalies"] for r in expected)
    expect(page.locator("#total")).to_have_attribute("data-value", str(total))
    expect(page.locator("#anomalies")).to_have_attribute("data-value", str(anomaly_total))
    assert anomaly_total >= 1
    log.assert_clean()


def test_device_picker_and_time_range(page: Page, running_app: RunningApp, seeded: str) -> None:
    log = PageLog().watch(page)
    sign_in(page, running_app.base)
    expect(page.locator("#devices input[type=checkbox]")).to_have_count(2)
    page.uncheck(f"#devices input[value={OTHER_DEVICE}]")
    page.wait_for_function("""() => !Chart.getChart(document.querySelector('section[data-tag="temperature"] canvas'))
                               .data.datasets.some((d) => d.label === 'browser-2')""")
    page.check("#ranges input[value='1h']")
    page.wait_for_function("""() => { const c = Chart.getChart(document.querySelector('section[data-tag="temperature"] canvas'));
                                      return c.scales.x.max - c.scales.x.min > 59 * 60 * 1000; }""")
    labels = {dataset["label"] for dataset in page.evaluate(CHART_DATA, "temperature")["datasets"]}
    assert OTHER_DEVICE not in labels and DEVICE in labels, "the picked devices survive a range change"
    log.assert_clean()


def test_stream_reconnects_after_a_server_restart(page: Page, running_app: RunningApp, seeded: str) -> None:
    sign_in(page, running_app.base)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    running_app.restart()
    token = running_app.token()
    at = datetime.now(UTC).replace(microsecond=0)
    ingest(running_app, token, tag="humidity", value=50.1, at=at)
    # EventSource retries every 2 s; the reading then arrives in the new stream's snapshot or updates.
    page.wait_for_function(HAS_POINT, arg=["humidity", epoch_ms(at), 50.1, DEVICE], timeout=20_000)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")


def test_signed_out_stream_sends_the_page_back_to_sign_in(page: Page, running_app: RunningApp) -> None:
    sign_in(page, running_app.base, DASHBOARD)
    page.click(".sign-out button")
    expect(page).to_have_url(f"{running_app.base}/dashboard/sign-in")
    assert page.context.cookies() == []
    page.goto(f"{running_app.base}/dashboard")
    expect(page).to_have_url(f"{running_app.base}/dashboard/sign-in")
