"""`make screenshots`: PNGs of what people see, regenerated from the running code into docs/images/.

    python -m tests.browser.screenshots --out docs/images

Starts the app (uvicorn, a fresh SQLite file in a temporary directory) and the simulator (5 devices, 5 %
injected anomalies), adds one unmistakable anomaly, then drives headless Chromium: the dashboard signed in
with live data (dashboard.png), and the Locust web UI in the middle of a smoke run (locust-ui.png, its
statistics; locust-ui-charts.png, its charts). The last minutes are backfilled so the 5-minute axis is full.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from devstack.processes import free_port, stop, wait_for_port
from loadtests.harness.app_processes import start_app, wait_ready

CHROMIUM = "/usr/bin/chromium"
REPOSITORY = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1440, "height": 900}
LIVE_DATA_SECONDS = 15
LOADTEST = {"client_id": "loadtest", "client_secret": "loadtest-local-secret"}
BACKFILL_SECONDS, BACKFILL_STEP = 270, 3
# Like the simulator's fermenters (loadtests/simulator/): centre, amplitude of a slow wave, noise.
BACKFILL_TAGS = {"fermenter_temp": (37.0, 1.2, 0.3), "fermenter_ph": (7.0, 0.25, 0.05),
                 "agitator_rpm": (450.0, 60.0, 12.0)}


def backfill(base: str) -> None:
    """The last 4.5 minutes of the simulator's five devices, so the 5-minute axis is full, not a sliver."""
    token = httpx.post(f"{base}/auth/token", json=LOADTEST, timeout=10).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    now = datetime.now(UTC).replace(microsecond=0)
    generator = random.Random(15)
    readings = []
    for device in range(1, 6):
        phase = generator.uniform(0, math.tau)
        for step in range(BACKFILL_SECONDS // BACKFILL_STEP, 0, -1):
            at = now - timedelta(seconds=step * BACKFILL_STEP)
            for tag, (centre, amplitude, noise) in BACKFILL_TAGS.items():
                value = centre + amplitude * math.sin(phase + step / 40) + generator.gauss(0, noise)
                readings.append({"timestamp": at.isoformat(), "tag": tag, "value": round(value, 3),
                                 "device_id": f"sim-fermenter-{device:03d}"})
    for start in range(0, len(readings), 500):
        httpx.post(f"{base}/ingest/batch", headers=headers, json=readings[start:start + 500],
                   timeout=30).raise_for_status()


def add_anomaly(base: str) -> None:
    """A steady series and then a spike on its own device: a red point the picture is sure to show."""
    token = httpx.post(f"{base}/auth/token", json=LOADTEST, timeout=10).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    now = datetime.now(UTC).replace(microsecond=0)
    for index in range(15):
        at = now - timedelta(seconds=(15 - index) * 10)
        httpx.post(f"{base}/ingest", headers=headers, timeout=10, json={
            "timestamp": at.isoformat(), "tag": "temperature", "value": 21.0 + (index % 3) * 0.2,
            "device_id": "line-7"}).raise_for_status()
    answer = httpx.post(f"{base}/ingest", headers=headers, timeout=10, json={
        "timestamp": now.isoformat(), "tag": "temperature", "value": 48.0, "device_id": "line-7"}).json()
    if not answer["is_anomaly"]:
        raise RuntimeError(f"the spike was not flagged: {answer}")


def dashboard(page: Page, base: str, out: Path) -> Path:
    page.goto(f"{base}/dashboard")
    page.fill("input[name=client_id]", "dashboard")
    page.fill("input[name=client_secret]", "dashboard-local-secret")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard")
    page.wait_for_selector("section.chart canvas")
    page.wait_for_function("() => document.getElementById('live').dataset.state === 'live'")
    page.wait_for_timeout(2500)  # a few pushes
    path = out / "dashboard.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def locust_ui(page: Page, base: str, workdir: Path, out: Path) -> Path:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "loadtests.locust.run", "--ui", "--host", base, "--web-port", str(port),
         "--results-dir", str(workdir / "results")],
        cwd=REPOSITORY, stdout=(workdir / "locust.log").open("w"), stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=60, process=process)
        page.goto(f"http://127.0.0.1:{port}")
        page.get_by_text("Custom parameters").click()
        page.select_option("select[name=loadProfile]", "smoke")
        page.fill("input[name=loadHold]", "60")
        page.get_by_role("button", name="Start").click()
        page.wait_for_selector("tr:has-text('Aggregated')")
        page.wait_for_timeout(12_000)  # mid-run: users up, requests flowing
        path = out / "locust-ui.png"
        page.screenshot(path=str(path))
        page.get_by_role("tab", name="Charts").click()
        page.wait_for_timeout(3000)
        page.screenshot(path=str(out / "locust-ui-charts.png"))
        page.get_by_role("button", name="Stop").click()
        page.wait_for_timeout(1000)
        return path
    finally:
        stop(process, timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.browser.screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPOSITORY / "docs" / "images")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sensor-screenshots-") as temporary:
        workdir = Path(temporary)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        app = start_app("app", port, f"sqlite+aiosqlite:///{workdir / 'sensors.db'}", workdir)
        simulator = None
        try:
            wait_ready(port, app)
            backfill(base)
            simulator = subprocess.Popen(
                [sys.executable, "-m", "loadtests.simulator", "--url", base, "--devices", "5", "--rate", "1",
                 "--seed", "15", "--spool", str(workdir / "spool.jsonl")],
                cwd=REPOSITORY, stdout=(workdir / "simulator.log").open("w"), stderr=subprocess.STDOUT,
            )
            print(f"screenshots: collecting {LIVE_DATA_SECONDS} s of simulated readings ...", flush=True)
            time.sleep(LIVE_DATA_SECONDS)
            add_anomaly(base)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox"] if os.geteuid() == 0 else [])
                try:
                    page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
                    written = [dashboard(page, base, args.out)]
                    written.append(locust_ui(browser.new_page(viewport=VIEWPORT), base, workdir, args.out))
                    written.append(args.out / "locust-ui-charts.png")
                finally:
                    browser.close()
        finally:
            stop(simulator, timeout=15)
            stop(app, timeout=30)
    for path in written:
        print(f"wrote {path.relative_to(REPOSITORY) if path.is_relative_to(REPOSITORY) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
