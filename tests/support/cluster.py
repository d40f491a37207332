"""N app processes (`uvicorn app.main:app`) behind HAProxy round robin, like ECS tasks behind the ALB, on a
PostgreSQL database and, optionally, a redis-server as the shared state store. Used by the multi-process
proof (tests/integration/test_shared_state.py, `make shared-state-proof`)."""

from __future__ import annotations

import http.client
import json
import subprocess
from contextlib import ExitStack
from pathlib import Path

from devstack.processes import free_port, stop, wait_for_port
from devstack.redis import RedisServer
from loadtests.harness.app_processes import start_app, wait_ready
from loadtests.harness.haproxy import ensure_haproxy

LOADTEST_CREDENTIALS = {"client_id": "loadtest", "client_secret": "loadtest-local-secret"}


def round_robin_config(listen: int, servers: dict[str, int]) -> str:
    """Plain round robin over every app, health-checked on /ready, a failed connect retried elsewhere."""
    lines = "\n".join(f"    server {name} 127.0.0.1:{port}" for name, port in servers.items())
    return f"""\
global
    maxconn 2000

defaults
    mode http
    option redispatch
    retries 3
    retry-on conn-failure
    timeout connect 2s
    timeout client 60s
    timeout server 60s

frontend tasks
    bind 127.0.0.1:{listen}
    default_backend app

backend app
    balance roundrobin
    option httpchk
    http-check send meth GET uri /ready
    default-server check inter 1s rise 1 fall 3
{lines}
"""


class AppCluster:
    """Start with `start()`, stop everything it started with `close()`."""

    def __init__(self, workdir: Path, database_url: str, *, processes: int, state_store: bool,
                 extra_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.names = [f"task{index + 1}" for index in range(processes)]
        self.with_store = state_store
        self.extra_env = extra_env or {}
        self.cleanup = ExitStack()
        self.store: RedisServer | None = None

    def start(self) -> AppCluster:
        binary = ensure_haproxy()
        env = {"SENSOR_METRICS_FLUSH_SECONDS": "3600", "SENSOR_LOG_LEVEL": "WARNING", **self.extra_env}
        if self.with_store:
            self.store = RedisServer(log_path=self.workdir / "redis.log").start()
            self.cleanup.callback(self.store.stop)
            env["SENSOR_STATE_STORE_URL"] = self.store.url
        self.ports = {name: free_port() for name in self.names}
        self.apps = {name: start_app(name, self.ports[name], self.database_url, self.workdir, extra_env=env)
                     for name in self.names}
        self.cleanup.callback(lambda: [stop(process, timeout=30) for process in self.apps.values()])
        for name in self.names:
            wait_ready(self.ports[name], self.apps[name])
        self.port = free_port()
        config = self.workdir / "haproxy.cfg"
        config.write_text(round_robin_config(self.port, self.ports))
        log = open(self.workdir / "haproxy.log", "w")
        self.cleanup.callback(log.close)
        proxy = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=log,
                                 stderr=subprocess.STDOUT)
        self.cleanup.callback(stop, proxy, timeout=10)
        wait_for_port(self.port, timeout=10, process=proxy)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self, name: str) -> dict:
        """GET /metrics of one process (not through the proxy): that task's counters and gauges."""
        token = self._token(self.ports[name])
        connection = http.client.HTTPConnection("127.0.0.1", self.ports[name], timeout=10)
        try:
            connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200, body
            return json.loads(body)
        finally:
            connection.close()

    def counter(self, name: str) -> list[int]:
        """One counter of every process (this interval; the tests flush hourly)."""
        return [self.metrics(task)["counters"][name] for task in self.names]

    @staticmethod
    def _token(port: int) -> str:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("POST", "/auth/token", body=json.dumps(LOADTEST_CREDENTIALS),
                               headers={"Content-Type": "application/json"})
            return json.loads(connection.getresponse().read())["access_token"]
        finally:
            connection.close()

    def close(self) -> None:
        self.cleanup.close()
