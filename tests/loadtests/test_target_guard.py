"""The load test cannot leak its client secret: a run may only target the configured platform URL.

A real Locust (web UI and headless) is pointed at another loopback host on which this test listens:
the run is refused with a clear message before any request leaves, and nothing ever connects to that
listener. The positive control: the same UI, started against the configured host, does reach it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from devstack.processes import free_port, stop, wait_for_port
from loadtests.locust.target_guard import TARGET_ENV, TargetNotAllowed, check, normalize
from tests.conftest import REPO_ROOT

OTHER_HOST = "127.0.0.2"  # another loopback address: "a host of someone's choosing"


class Listener:
    """A TCP listener that records every connection and what arrived on it (answers 401)."""

    def __init__(self, host: str) -> None:
        self.socket = socket.create_server((host, 0))
        self.url = f"http://{host}:{self.socket.getsockname()[1]}"
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    data = connection.recv(65536)
                except OSError:
                    data = b""
                self.received.append(data)
                body = b'{"error":"no"}'
                connection.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                                   b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))

    def close(self) -> None:
        self.socket.close()


@contextmanager
def listener(host: str) -> Iterator[Listener]:
    server = Listener(host)
    try:
        yield server
    finally:
        server.close()


def test_only_the_configured_origin_is_allowed() -> None:
    environment = SimpleNamespace(loadtest_configured_target="https://sensor.example.com")
    check(environment, "https://SENSOR.example.com:443/")
    for other in ("https://evil.example.com", "http://sensor.example.com", "https://sensor.example.com:8443",
                  "https://sensor.example.com.evil.example", "", None):
        with pytest.raises(TargetNotAllowed):
            check(environment, other)
    with pytest.raises(TargetNotAllowed, match="no load-test target is configured"):
        check(SimpleNamespace(loadtest_configured_target=None), "https://sensor.example.com")
    assert normalize("ftp://x") is None


def _post_form(url: str, fields: dict[str, str]) -> dict:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST")  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


@pytest.mark.slow
def test_a_ui_run_pointed_at_another_host_is_refused_before_any_request(tmp_path: Path) -> None:
    with listener("127.0.0.1") as platform, listener(OTHER_HOST) as other:
        web_port = free_port()
        env = {**os.environ, "LOADTEST_CLIENT_SECRET": "loadtest-local-secret"}
        ui = subprocess.Popen(
            [sys.executable, "-m", "loadtests.locust.run", "--ui", "--profile", "smoke", "--host", platform.url,
             "--web-port", str(web_port), "--results-dir", str(tmp_path / "results")],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        try:
            wait_for_port(web_port, timeout=60, process=ui)
            swarm = f"http://127.0.0.1:{web_port}/swarm"
            answer = _post_form(swarm, {"user_count": "2", "spawn_rate": "2", "host": other.url})
            assert answer["success"] is False
            assert f"may only target {platform.url}" in answer["message"]
            assert repr(other.url) in answer["message"]
            time.sleep(3)
            assert other.received == [], "a request reached the other host"

            # Positive control: the configured host is reachable from the same UI.
            answer = _post_form(swarm, {"user_count": "2", "spawn_rate": "2", "host": platform.url})
            assert answer["success"] is True, answer
            deadline = time.monotonic() + 20
            while not platform.received and time.monotonic() < deadline:
                time.sleep(0.2)
            assert any(b"POST /auth/token" in data for data in platform.received)
            assert other.received == []
        finally:
            stop(ui, timeout=30)
            output = ui.stdout.read() if ui.stdout else ""
        assert "load test refused" in output


@pytest.mark.slow
def test_a_headless_run_at_another_host_exits_1_without_sending(tmp_path: Path) -> None:
    """The second line: whatever sets the host, test_start and the users refuse it."""
    with listener(OTHER_HOST) as other:
        env = {**os.environ, TARGET_ENV: "http://127.0.0.1:9", "PYTHONPATH": str(REPO_ROOT)}
        result = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "loadtests" / "locust" / "locustfile.py"), "--headless",
             "--host", other.url, "--load-profile", "smoke", "--run-time", "10s", "--only-summary"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        time.sleep(1)
        assert other.received == []
    assert result.returncode == 1, result.stderr[-2000:]
    assert "may only target http://127.0.0.1:9" in result.stderr
