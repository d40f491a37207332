"""Five dashboard viewers in headless Chromium for 60 s (BROWSER_VIEWERS_SECONDS) while the simulator ingests
(5 devices x 1 reading/s, its own client) and the README's curl loop reads /sensors/stats with the dev token
at 50 req/s: no 4xx/5xx in any page's network log, no console error, every viewer's counters keep rising
(the stream is alive the whole time), and zero 429s anywhere — the simulator's and the curl loop's included."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import PageLog, RunningApp, sign_in
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow
VIEWERS = 5
SECONDS = float(os.environ.get("BROWSER_VIEWERS_SECONDS", "60"))
CURL_PER_SECOND = 50
DEV = {"client_id": "dev", "client_secret": "dev-local-secret"}


class CurlLoop(threading.Thread):
    """`curl -H "Authorization: Bearer $(cat var/dev-token)" .../sensors/stats` at a steady 50 req/s."""

    def __init__(self, base: str, token: str) -> None:
        super().__init__(daemon=True)
        self.base, self.token = base, token
        self.statuses: Counter[int] = Counter()
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=10) as client:
            next_at = time.monotonic()
            while not self.halt.is_set():
                self.statuses[client.get("/sensors/stats").status_code] += 1
                next_at += 1 / CURL_PER_SECOND
                self.halt.wait(max(0.0, next_at - time.monotonic()))


def counters(page: Page) -> int:
    value = page.locator("#total").get_attribute("data-value")
    return int(value) if value else -1


def test_five_viewers_with_simulator_and_curl_loop_for_a_minute(browser: Browser, running_app: RunningApp,
                                                                 tmp_path: Path) -> None:
    simulator_log = tmp_path / "simulator.log"
    simulator = subprocess.Popen(
        [sys.executable, "-m", "loadtests.simulator", "--url", running_app.base, "--devices", "5", "--rate", "1",
         "--duration", str(SECONDS + 5), "--spool", str(tmp_path / "spool.jsonl"), "--seed", "15"],
        cwd=REPO_ROOT, stdout=simulator_log.open("w"), stderr=subprocess.STDOUT,
    )
    curl = CurlLoop(running_app.base, running_app.token(DEV))
    curl.start()
    contexts, pages, logs = [], [], []
    try:
        for _ in range(VIEWERS):
            context = browser.new_context()
            page = context.new_page()
            logs.append(PageLog().watch(page))
            sign_in(page, running_app.base)
            contexts.append(context)
            pages.append(page)
        for page in pages:
            page.wait_for_function("() => Number(document.getElementById('total').dataset.value) > 0", timeout=15_000)
        seen = [counters(page) for page in pages]
        deadline = time.monotonic() + SECONDS
        rounds = 0
        while time.monotonic() < deadline:
            time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
            now = [counters(page) for page in pages]
            assert all(after > before for before, after in zip(seen, now, strict=True)), \
                f"a viewer's counters stopped rising (stream stopped?): {seen} -> {now}"
            seen, rounds = now, rounds + 1
        for log in logs:
            log.assert_clean()
    finally:
        curl.halt.set()
        curl.join(timeout=15)
        for context in contexts:
            context.close()
        try:
            simulator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            simulator.kill()
    assert rounds >= 1
    assert set(curl.statuses) == {200}, f"curl loop answers: {dict(curl.statuses)}"
    assert sum(curl.statuses.values()) >= CURL_PER_SECOND * SECONDS * 0.5, dict(curl.statuses)
    final = [line for line in simulator_log.read_text().splitlines() if "[simulator final" in line]
    assert final, simulator_log.read_text()[-2000:]
    assert re.search(r"\brate_limited=0\b", final[-1]) and re.search(r"\baccepted=[1-9]", final[-1]), final[-1]
