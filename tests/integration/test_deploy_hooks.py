"""The blue/green smoke-test hook (lambda/deploy_hooks) against a real app over real HTTP.

A real uvicorn process plays the green tasks behind the test listener: the hook must succeed and
leave its canary reading stored; answer IN_PROGRESS while nothing listens and FAILED once the bound is
reached; and FAIL (saying why) when the app refuses the smoke client.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.settings import sha256_hex
from devstack.certificates import LocalCertificateAuthority, ServerCertificate
from devstack.lambdas import LocalLambdaContext, load_handler
from devstack.processes import free_port, wait_for_port
from tests.support.app import LOADTEST

STAGE = "POST_TEST_TRAFFIC_SHIFT"


def hook_event(execution_id: str = "exec-1", stage: str = STAGE, **extra: Any) -> dict[str, Any]:
    """The documented lifecycle-hook payload."""
    revision = "arn:aws:ecs:eu-west-1:123456789012:service-revision/sensor-dev/sensor-dev-ingest/2"
    return {
        "executionId": execution_id,
        "lifecycleStage": stage,
        "resourceArn": "arn:aws:ecs:eu-west-1:123456789012:service-deployment/sensor-dev/sensor-dev-ingest/x",
        "executionDetails": {
            "serviceArn": "arn:aws:ecs:eu-west-1:123456789012:service/sensor-dev/sensor-dev-ingest",
            "targetServiceRevisionArn": revision,
            "testTrafficWeights": {revision: 100},
            "productionTrafficWeights": {},
        },
        **extra,
    }


@contextmanager
def real_app(tmp_path: Path, *, tls: ServerCertificate | None = None, **extra_env: str) -> Iterator[tuple[str, Path]]:
    """uvicorn app.main:app on a free port with its own SQLite database: (base URL, database). With
    `tls`, it serves HTTPS with that certificate (like the ALB's listener)."""
    port = free_port()
    database = tmp_path / "sensors.db"
    env = {**os.environ, "SENSOR_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
           "SENSOR_DEAD_LETTER_DIR": str(tmp_path / "dl"), **extra_env}
    tls_arguments = ["--ssl-certfile", str(tls.certificate), "--ssl-keyfile", str(tls.key)] if tls else []
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", *tls_arguments],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for_port(port, timeout=30, process=server)
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}", database
    finally:
        server.terminate()
        try:
            server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    """The handler with the local load-test client as smoke client and a short retry bound."""
    handler = load_handler("deploy_hooks")
    module = sys.modules["lambda_deploy_hooks_handler"]
    module._client_secret.cache_clear()
    module._ATTEMPTS.clear()
    monkeypatch.setenv("SMOKE_CLIENT_ID", LOADTEST["client_id"])
    monkeypatch.setenv("SMOKE_CLIENT_SECRET", LOADTEST["client_secret"])
    monkeypatch.setenv("MAX_ATTEMPTS", "3")
    monkeypatch.setenv("CALLBACK_DELAY_SECONDS", "1")
    monkeypatch.setenv("REQUEST_TIMEOUT_SECONDS", "2")

    def invoke(base_url: str, event: dict[str, Any] | None = None) -> dict[str, Any]:
        monkeypatch.setenv("TEST_BASE_URL", base_url)
        return handler(event or hook_event(), LocalLambdaContext(function_name="sensor-local-deploy-smoke"))

    yield invoke
    module._client_secret.cache_clear()


def log_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_healthy_green_tasks_pass_and_the_canary_is_stored(
    tmp_path: Path, hook: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    with real_app(tmp_path) as (base_url, database):
        assert hook(base_url) == {"hookStatus": "SUCCEEDED"}
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT device_id, tag, value FROM readings WHERE device_id = 'deploy-canary'"
        ).fetchall()
    assert rows == [("deploy-canary", "fermenter_ph", 7.0)]
    lines = log_lines(capsys.readouterr().out)
    assert [line["step"] for line in lines] == ["start", "health", "ready", "token", "ingest", "read_back", "hook"]
    assert all(line["execution_id"] == "exec-1" for line in lines)
    assert lines[-1]["outcome"] == "SUCCEEDED"


@pytest.mark.slow
def test_unreachable_service_is_in_progress_until_the_bound_then_failed(
    hook: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    base_url = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    first = hook(base_url)
    assert first["hookStatus"] == "IN_PROGRESS" and first["callBackDelay"] == 1
    # ECS hands back the hookDetails of the previous answer with the same executionId.
    second = hook(base_url, hook_event(hookDetails=first["hookDetails"]))
    assert second["hookStatus"] == "IN_PROGRESS"
    assert second["hookDetails"]["smokeAttempts"] == 2
    assert second["hookDetails"]["smokeFirstAttemptAt"] == first["hookDetails"]["smokeFirstAttemptAt"]
    assert hook(base_url, hook_event(hookDetails=second["hookDetails"])) == {"hookStatus": "FAILED"}
    final = log_lines(capsys.readouterr().out)[-1]
    assert final["outcome"] == "FAILED" and "still not ready after 3 attempts" in final["reason"]
    assert "no answer" in final["reason"]


@pytest.mark.slow
def test_the_bound_holds_without_hook_details_for_a_warm_function(
    hook: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MAX_ATTEMPTS", "2")
    assert hook(base_url)["hookStatus"] == "IN_PROGRESS"
    assert hook(base_url) == {"hookStatus": "FAILED"}
    # Another deployment starts with a fresh count.
    assert hook(base_url, hook_event(execution_id="exec-2"))["hookStatus"] == "IN_PROGRESS"


@pytest.mark.slow
def test_app_refusing_the_smoke_client_fails_with_the_reason(
    tmp_path: Path, hook: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    clients = json.dumps([{"client_id": "simulator", "secret_sha256": sha256_hex("simulator-local-secret")}])
    with real_app(tmp_path, SENSOR_CLIENTS=clients) as (base_url, database):
        assert hook(base_url) == {"hookStatus": "FAILED"}
    lines = log_lines(capsys.readouterr().out)
    token = next(line for line in lines if line["step"] == "token")
    assert token["outcome"] == "failed" and token["status"] == 401
    assert "'loadtest'" in token["reason"]
    assert lines[-1]["outcome"] == "FAILED" and "/auth/token" in lines[-1]["reason"]
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM readings").fetchone()[0] == 0


@pytest.mark.slow
def test_tls_is_verified_against_the_certificates_name(
    tmp_path: Path, hook: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The hook dials an address the certificate does not name (the ALB's own DNS name in AWS; here
    127.0.0.1) and verifies the certificate against TLS_SERVER_NAME (SNI), never with verification off."""
    authority = LocalCertificateAuthority(tmp_path / "ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.ca_file))  # the trust store the hook's context loads
    with real_app(tmp_path, tls=authority.issue(("sensor.test",))) as (base_url, database):
        assert base_url.startswith("https://127.0.0.1:")
        monkeypatch.setenv("TLS_SERVER_NAME", "sensor.test")
        assert hook(base_url, hook_event(execution_id="tls-ok")) == {"hookStatus": "SUCCEEDED"}
        for name in ("other.test", ""):  # another name, and none (the URL's host, 127.0.0.1)
            monkeypatch.setenv("TLS_SERVER_NAME", name)
            assert hook(base_url, hook_event(execution_id=f"tls-{name}"))["hookStatus"] == "IN_PROGRESS"
    lines = log_lines(capsys.readouterr().out)
    failures = [line["reason"] for line in lines if line.get("step") == "health" and line["outcome"] != "ok"]
    assert len(failures) == 2 and all("CERTIFICATE_VERIFY_FAILED" in reason for reason in failures), failures
    with sqlite3.connect(database) as connection:  # only the verified run sent the secret and the canary
        assert connection.execute("SELECT count(*) FROM readings").fetchone()[0] == 1


def test_other_stages_succeed_without_checks(hook: Callable[..., dict[str, Any]]) -> None:
    assert hook("http://127.0.0.1:9", hook_event(stage="PRE_SCALE_UP")) == {"hookStatus": "SUCCEEDED"}


@contextmanager
def fixed_answer(status: int) -> Iterator[str]:
    """An HTTP server answering every request with `status`, like an ALB without healthy targets
    (503) or whose rule does not route to the service (its 404 default action)."""

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"detail":"fixed"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "hook_status"), [(503, "IN_PROGRESS"), (502, "IN_PROGRESS"), (404, "FAILED")])
def test_server_errors_before_readiness_wait_and_other_answers_fail(
    hook: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str], status: int, hook_status: str
) -> None:
    with fixed_answer(status) as base_url:
        assert hook(base_url)["hookStatus"] == hook_status
    health = next(line for line in log_lines(capsys.readouterr().out) if line["step"] == "health")
    assert health["status"] == status and f"answered {status}" in health["reason"]
