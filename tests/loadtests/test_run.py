"""`python -m loadtests.locust.run` against the real app (uvicorn on SQLite): a short smoke run passes its
thresholds and leaves every report; an impossible threshold fails the run naming it; the local
distributed mode (master + 1 worker) runs; bad flags are refused with a clear message."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.processes import free_port, stop
from loadtests.harness.app_processes import start_app, wait_ready
from loadtests.locust.run import parse_args
from tests.conftest import REPO_ROOT

REPORTS = ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "report.html", "summary.json",
           "response_times.png", "throughput.png", "users.png")
REQUEST_NAMES = {"POST /auth/token", "POST /ingest", "POST /ingest [seed-004]", "POST /ingest/batch", "GET /data",
                 "GET /sensors/stats", "GET /sensors/anomalies/count"}
RUN_TIMEOUT = 120


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app as `make up` serves it (embedded profile), on a fresh SQLite file: (base URL, database)."""
    workdir = tmp_path_factory.mktemp("app")
    database = workdir / "sensors.db"
    port = free_port()
    process = start_app("app", port, f"sqlite+aiosqlite:///{database}", workdir)
    try:
        wait_ready(port, process)
        yield f"http://127.0.0.1:{port}", database
    finally:
        stop(process, timeout=30)


def run(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadtests.locust.run", *flags], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT, check=False)


def results_of(parent: Path) -> tuple[Path, dict]:
    (folder,) = parent.iterdir()
    return folder, json.loads((folder / "summary.json").read_text())


@pytest.mark.slow
def test_smoke_run_passes_and_leaves_every_report(app: tuple[str, Path], tmp_path: Path) -> None:
    host, database = app
    finished = run("--profile", "smoke", "--host", host, "--hold", "5", "--seed", "7", "--results-dir", str(tmp_path))
    output = finished.stdout + finished.stderr

    assert finished.returncode == 0, output[-3000:]
    folder, summary = results_of(tmp_path)
    assert folder.name.endswith("Z-smoke")
    assert sorted(path.name for path in folder.iterdir() if path.name in REPORTS) == sorted(REPORTS)
    assert all((folder / name).stat().st_size > 0 for name in REPORTS)
    assert (folder / "users.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["passed"] is True and summary["violations"] == [] and summary["window"] == "hold"
    assert summary["metrics"]["requests"] > 0 and summary["metrics"]["failures"] == 0
    assert summary["profile"]["timeline"]["hold_s"] == 5
    assert "all thresholds met over the hold window" in output
    with (folder / "locust_stats.csv").open() as stats_file:
        rows = {row["Name"]: row for row in csv.DictReader(stats_file)}
    assert REQUEST_NAMES <= set(rows), sorted(rows)  # every user class ran
    assert all(rows[name]["Failure Count"] == "0" for name in REQUEST_NAMES)
    with sqlite3.connect(database) as connection:
        history, generated = connection.execute(
            "SELECT sum(device_id LIKE 'lt7-history-%'), sum(device_id LIKE 'lt7-w0-%') FROM readings").fetchone()
    assert history >= 3 * 60 and generated > 0  # seeded history for the readers, then the users' readings


@pytest.mark.slow
def test_an_impossible_threshold_fails_the_run_and_names_it(app: tuple[str, Path], tmp_path: Path) -> None:
    host, _ = app
    finished = run("--profile", "smoke", "--host", host, "--hold", "3", "--threshold", "p99_ms=0.001",
                   "--results-dir", str(tmp_path))
    output = finished.stdout + finished.stderr

    assert finished.returncode == 1, output[-3000:]
    assert "threshold p99_ms violated:" in output and "> 0.001 ms (hold window" in output
    _, summary = results_of(tmp_path)
    assert summary["passed"] is False
    assert [line.split(":")[0] for line in summary["violations"]] == ["threshold p99_ms violated"]


@pytest.mark.slow
def test_local_distributed_mode_runs_a_master_and_a_worker(app: tuple[str, Path], tmp_path: Path) -> None:
    host, _ = app
    finished = run("--profile", "smoke", "--host", host, "--hold", "4", "--workers", "1",
                   "--results-dir", str(tmp_path))
    output = finished.stdout + finished.stderr

    assert finished.returncode == 0, output[-3000:]
    assert "Worker " in output and "(index 0) reported as ready" in output
    _, summary = results_of(tmp_path)
    assert summary["passed"] is True and summary["metrics"]["requests"] > 0


@pytest.mark.parametrize(("flags", "message"), [
    (["--profile", "marathon"], "argument --profile: invalid choice: 'marathon'"),
    (["--threshold", "p100_ms=1"], "argument --threshold: unknown threshold 'p100_ms': use one of fail_ratio,"),
    (["--threshold", "p99_ms=soon"], "argument --threshold: threshold p99_ms must be a number, got 'soon'"),
    (["--users", "0"], "argument --users: must be > 0, got 0"),
    (["--host", "localhost:8000"], "argument --host: must be an http(s) URL"),
    (["--master"], "--master needs --expect-workers N"),
    (["--workers", "2", "--master", "--expect-workers", "2"], "choose one of --workers, --master and --worker"),
])
def test_bad_flags_are_refused_with_the_rule(flags: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(("flags", "message"), [
    (["--load-profile", "marathon"], "argument --load-profile: invalid choice: 'marathon'"),
    (["--load-thresholds", "p99_ms=1,p100_ms=2"], "argument --load-thresholds: unknown threshold 'p100_ms'"),
    (["--load-hold", "0"], "argument --load-hold: hold_s must be > 0, got 0"),
])
def test_locust_itself_refuses_bad_profile_flags(flags: list[str], message: str) -> None:
    """`locust -f loadtests/locust/locustfile.py` directly (as the web UI and remote workers are started)."""
    finished = subprocess.run([sys.executable, "-m", "locust", "-f", "loadtests/locust/locustfile.py", "--headless", *flags],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert finished.returncode == 2 and message in finished.stderr, finished.stderr[-2000:]
