"""App processes for drills and benchmarks: `uvicorn app.main:app` on a database, and its readiness."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

from devstack.local_resources import LOCAL_APP_ENV

READY_TIMEOUT = 60.0
EXIT_TIMEOUT = 40.0


def start_app(name: str, port: int, database_url: str, workdir: Path,
              extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """`uvicorn app.main:app` on the shared database, with its own dead-letter directory and log (appended to,
    so a restarted process keeps the earlier lines)."""
    env = {**os.environ, **LOCAL_APP_ENV, "SENSOR_DATABASE_URL": database_url, "SENSOR_DB_POOL_SIZE": "20",
           "SENSOR_DEAD_LETTER_DIR": str(workdir / f"dead-letter-{name}"), **(extra_env or {})}
    log = open(workdir / f"{name}.log", "a")
    # Keep-alive longer than the proxy's, so the proxy (not the app) closes idle connections.
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--backlog", "2048", "--timeout-keep-alive", "75",
         "--timeout-graceful-shutdown", "30"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def wait_ready(port: int, process: subprocess.Popen, timeout: float = READY_TIMEOUT) -> None:
    """Until GET /ready answers 200 (migrations done, accepting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app on port {port} exited with {process.returncode} before it was ready")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/ready")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.1)
    raise TimeoutError(f"app on port {port} not ready after {timeout}s")
