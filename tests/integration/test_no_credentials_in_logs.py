"""No credential in any log or output the platform writes (docs/security.md, "Credentials in logs").

The local platform runs for real: `uvicorn app.main:app` with its access log on (so every request line
is logged), the device simulator, and a short Locust run. The test drives every flow that carries a
secret or a token: token issue (JSON, OAuth2 form, and a client that puts its secret in the query
string), a wrong secret, single and batch ingest, every read, the metrics view, the dashboard page
(sign-in form, session cookie, page, live stream, and a `?token=` URL), an invalid token. Then it scans every file the platform wrote and
everything it printed: zero bearer tokens (any JWT, and each token issued here), zero client secrets,
zero signing keys.

`test_the_scan_finds_a_planted_token` is the scanner's own negative control.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.security.sessions import COOKIE_NAME as SESSION_COOKIE
from app.settings import LOCAL_SIGNING_KEY
from devstack.processes import free_port, stop, wait_for_port
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

SECRETS = ("simulator-local-secret", "loadtest-local-secret", "dashboard-local-secret", LOCAL_SIGNING_KEY)
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}")
BEARER = re.compile(rb"(?i)bearer\s+(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{8,}")


def find_credentials(files: Iterable[Path], tokens: Iterable[str], extra_text: str = "") -> list[str]:
    """Every credential found: `file: what` (the value itself is never repeated in the report)."""
    literals = [(secret.encode(), "client secret or signing key") for secret in SECRETS]
    literals += [(token.encode(), "an issued bearer token") for token in tokens]
    sources = [(path.name, path.read_bytes()) for path in files] + [("<stdout/stderr>", extra_text.encode())]
    findings = []
    for name, content in sources:
        for literal, what in literals:
            if literal in content:
                findings.append(f"{name}: {what} ({content.count(literal)}x)")
        for pattern, what in ((JWT, "a JWT"), (BEARER, "an Authorization: Bearer value")):
            if hits := pattern.findall(content):
                findings.append(f"{name}: {what} ({len(hits)}x)")
    return findings


def written_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


def test_the_scan_finds_a_planted_token(tmp_path: Path) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzaW11bGF0b3IifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"  # noqa: S105 - a fake
    (tmp_path / "clean.log").write_text('{"message": "token issued", "client_id": "simulator"}\n')
    assert find_credentials(written_files(tmp_path), [token]) == []
    (tmp_path / "app.log").write_text(f'{{"message": "GET /dashboard?token={token}"}}\n')
    (tmp_path / "locust.log").write_text("login with simulator-local-secret\nAuthorization: Bearer abcdefgh12345678\n")
    findings = find_credentials(written_files(tmp_path), [token])
    assert "app.log: an issued bearer token (1x)" in findings and "app.log: a JWT (1x)" in findings
    assert "locust.log: client secret or signing key (1x)" in findings
    assert "locust.log: an Authorization: Bearer value (1x)" in findings


def _drive_every_flow(base: str, tokens: list[str]) -> None:
    now = datetime.now(UTC)
    with httpx.Client(base_url=base, timeout=30) as client:
        answer = client.post("/auth/token", json={"client_id": "simulator", "client_secret": "simulator-local-secret"})
        assert answer.status_code == 200, answer.text
        tokens.append(answer.json()["access_token"])
        answer = client.post("/auth/token", data={"grant_type": "client_credentials", "client_id": "dashboard",
                                                  "client_secret": "dashboard-local-secret"})
        assert answer.status_code == 200, answer.text
        tokens.append(answer.json()["access_token"])
        # A client that puts its secret in the URL (the access log records URLs): answered, not logged.
        client.post("/auth/token?client_id=loadtest&client_secret=loadtest-local-secret",
                    json={"client_id": "loadtest", "client_secret": "loadtest-local-secret"})
        assert client.post("/auth/token", json={"client_id": "simulator",
                                                "client_secret": "simulator-local-secret-wrong"}).status_code == 401
        writer, reader = ({"Authorization": f"Bearer {token}"} for token in tokens)
        reading = {"device_id": "scan-1", "tag": "fermenter_ph", "value": 7.0, "timestamp": now.isoformat()}
        assert client.post("/ingest", json=reading, headers=writer).status_code == 201
        batch = [{**reading, "timestamp": (now - timedelta(seconds=i + 1)).isoformat()} for i in range(5)]
        assert client.post("/ingest/batch", json=batch, headers=writer).status_code == 201
        for path in ("/data?device_id=scan-1", "/sensors/stats", "/sensors/anomalies/count", "/metrics"):
            assert client.get(path, headers=reader).status_code == 200, path
        # The dashboard: sign-in form -> HttpOnly session cookie (itself a token), the page, the session
        # probe and the live stream, all carrying the cookie.
        signed_in = client.post("/dashboard/sign-in", data={"client_id": "dashboard",
                                                             "client_secret": "dashboard-local-secret"},
                                headers={"Sec-Fetch-Site": "same-origin"})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/dashboard", signed_in.text
        tokens.append(client.cookies[SESSION_COOKIE])
        assert client.get("/dashboard").status_code == 200
        assert client.get("/dashboard/session").status_code == 200
        with client.stream("GET", "/dashboard/stream") as stream:
            assert stream.status_code == 200
            next(stream.iter_bytes())
        # An old bookmark or a hand-made link with the token in the URL: refused now, and the request line
        # the access log records must still not keep the token.
        client.get(f"/dashboard?token={tokens[1]}")
        assert client.get("/data", headers={"Authorization": f"Bearer {tokens[0]}x"}).status_code == 401


def test_no_bearer_token_or_client_secret_in_any_log(tmp_path: Path) -> None:
    work = tmp_path / "platform"
    work.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "APP_ENV": "local", "PYTHONPATH": str(REPO_ROOT), "SENSOR_VAR_DIR": str(work / "var"),
           "SENSOR_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'sensors.db'}",
           "SENSOR_DEAD_LETTER_DIR": str(work / "dead-letter"), "SENSOR_METRICS_FLUSH_SECONDS": "2"}
    app_log = open(work / "app.log", "wb")
    app = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
                           cwd=work, env=env, stdout=app_log, stderr=subprocess.STDOUT)
    simulator = None
    tokens: list[str] = []
    try:
        wait_for_port(port, timeout=60, process=app)
        _drive_every_flow(base, tokens)
        simulator = subprocess.Popen(
            [sys.executable, "-m", "loadtests.simulator", "--url", base, "--devices", "2", "--rate", "2",
             "--spool", str(work / "simulator-spool.jsonl")],
            cwd=work, env=env, stdout=open(work / "simulator.log", "wb"), stderr=subprocess.STDOUT,
        )
        locust = subprocess.run(
            [sys.executable, "-m", "loadtests.locust.run", "--profile", "smoke", "--host", base,
             "--results-dir", str(work / "results")],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
        )
        (work / "locust.log").write_text(locust.stdout + locust.stderr)
        assert locust.returncode == 0, locust.stderr[-3000:]
    finally:
        if simulator is not None:
            simulator.send_signal(signal.SIGINT)
            stop(simulator, timeout=20)
        stop(app, timeout=30)
        app_log.close()

    files = written_files(work)
    names = {path.name for path in files}
    assert {"app.log", "simulator.log", "locust.log", "summary.json", "report.html"} <= names, names
    app_lines = (work / "app.log").read_text()
    assert "POST /ingest HTTP/1.1" in app_lines and "/dashboard?token=[REDACTED]" in app_lines
    assert "client_secret=[REDACTED]" in app_lines  # the URL was logged, the secret in it was not
    assert len(tokens) == 3
    assert find_credentials(files, tokens) == []
