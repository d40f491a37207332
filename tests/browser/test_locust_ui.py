"""The Locust web UI (`python -m loadtests.locust.run --ui`, what `make up` serves at :8089) in headless Chromium:
a smoke run started from its form shows requests rising, stops on the Stop button, and that test run's
folder then holds report.html, summary.json, the CSVs and non-empty PNG plots."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from devstack.processes import free_port, stop, wait_for_port
from tests.browser.conftest import PageLog, RunningApp
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow
CSVS = ("locust_stats.csv", "locust_failures.csv", "locust_exceptions.csv", "locust_stats_history.csv")
PLOTS = ("response_times.png", "throughput.png", "users.png")


@pytest.fixture
def locust_ui(running_app: RunningApp, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    results = tmp_path / "results"
    process = subprocess.Popen(  # the same command `make up` starts
        [sys.executable, "-m", "loadtests.locust.run", "--ui", "--host", running_app.base, "--web-port", str(port),
         "--results-dir", str(results)],
        cwd=REPO_ROOT, stdout=(tmp_path / "locust.log").open("w"), stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=60, process=process)
        yield f"http://127.0.0.1:{port}", results
    finally:
        stop(process, timeout=30)


# The smoke profile's ramp (loadtests/locust/profiles.py; not imported: that would import Locust and its
# gevent monkey-patching into the test process).
SMOKE_RAMP_S = 2.0

def aggregated_requests(page: Page) -> int:
    cells = page.locator("tr", has_text="Aggregated").first.locator("td")
    return int(cells.nth(2).inner_text().replace(",", "") or 0)


def start_smoke_run(page: Page, base: str, hold_seconds: int) -> None:
    page.goto(base)
    page.get_by_text("Custom parameters").click()
    page.select_option("select[name=loadProfile]", "smoke")
    page.fill("input[name=loadHold]", str(hold_seconds))
    page.get_by_role("button", name="Start").click()


def test_smoke_run_from_the_form_shows_requests_and_leaves_complete_results(page: Page, locust_ui) -> None:
    base, results = locust_ui
    log = PageLog().watch(page)
    start_smoke_run(page, base, hold_seconds=60)
    started = time.monotonic()
    expect(page.locator("tr", has_text="Aggregated").first).to_be_visible(timeout=20_000)
    # summary.json's metrics cover the hold window only: stop once it has begun (after the ramp).
    page.wait_for_timeout(max(0.0, SMOKE_RAMP_S + 1 - (time.monotonic() - started)) * 1000)
    first = aggregated_requests(page)
    deadline = time.monotonic() + 20
    while aggregated_requests(page) <= max(first, 0) and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    rising = aggregated_requests(page)
    assert rising > first >= 0, f"requests did not rise: {first} -> {rising}"

    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("STOPPED").first).to_be_visible(timeout=20_000)
    deadline = time.monotonic() + 30
    while not list(results.glob("*/summary.json")) and time.monotonic() < deadline:
        time.sleep(0.5)
    (folder,) = [path.parent for path in results.glob("*/summary.json")]
    assert folder.name.endswith("-smoke-ui")
    for name in ("report.html", "summary.json", *CSVS, *PLOTS):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    for plot in PLOTS:
        assert (folder / plot).stat().st_size > 5_000, f"{plot} looks empty"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["profile"]["name"] == "smoke" and summary["metrics"]["requests"] > 0
    history = (folder / "locust_stats_history.csv").read_text().splitlines()
    assert sum(",Aggregated," in line for line in history) >= 2, "one history row per second of the run"
    assert "Aggregated" in (folder / "locust_stats.csv").read_text()
    assert "<html" in (folder / "report.html").read_text()[:500].lower()
    log.assert_clean()
