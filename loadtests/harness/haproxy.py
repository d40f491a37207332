"""HAProxy in front of local app processes, like the ALB: its configuration, the foreground process and
its runtime API (server states, `show stat`), installed with apt-get when missing. The drills and the
failover cluster use it.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from devstack.processes import free_port, stop, wait_for_port


def wait_for_admin_socket(socket_path: Path, process: subprocess.Popen, timeout: float = 10) -> None:
    """HAProxy opens its listening port and its admin socket one after the other: a caller that only waited
    for the port could find no socket yet."""
    deadline = time.monotonic() + timeout
    while not socket_path.exists():
        if process.poll() is not None:
            raise RuntimeError(f"HAProxy exited ({process.returncode}) before creating {socket_path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"HAProxy did not create its admin socket {socket_path} within {timeout} s")
        time.sleep(0.02)


def runtime_command(socket_path: Path, line: str) -> str:
    """One HAProxy runtime API command over its admin socket; returns the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(5)
        connection.connect(str(socket_path))
        connection.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def ensure_haproxy() -> str:
    """The haproxy binary; installed with apt-get when missing (like `make postgres`)."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    print("haproxy not found: installing it with apt-get", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "-qq", "haproxy"]
    # Fixed commands (S603): apt-get with a constant package name.
    if subprocess.run(install, env=env, check=False, capture_output=True, timeout=600).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-qq"], env=env, check=True, timeout=600)
        subprocess.run(install, env=env, check=True, capture_output=True, timeout=600)
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise RuntimeError("haproxy is still missing after apt-get install haproxy")
    return found


def haproxy_config(listen: int, blue: int, green: int, stats_socket: Path, *, green_enabled: bool = False,
                   retry_on: str = "conn-failure", failover: bool = False, log_requests: bool = False) -> str:
    """Blue in the pool, green declared in maintenance (or both serving); health checks on /ready.

    `retry_on` widens HAProxy's retries beyond failed connects, e.g. "conn-failure empty-response" re-sends a
    request whose server died before answering (safe only because ingest is idempotent: see make drill).
    `failover` sends every retry to another server and takes a server out at its first connection error
    (passive check) instead of after three missed health checks, when a process may die unannounced.
    `log_requests` writes one line per request (with HAProxy's termination state) to haproxy.log."""
    logging = "\n    log stdout format raw local0" if log_requests else ""
    http_log = "\n    log global\n    option httplog" if log_requests else ""
    redispatch = " 1" if failover else ""
    passive = " observe layer4 error-limit 1 on-error mark-down" if failover else ""
    return f"""\
global
    maxconn 4000
    stats socket {stats_socket} mode 600 level admin{logging}

defaults
    mode http{http_log}
    option redispatch{redispatch}
    retries 3
    retry-on {retry_on}
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout queue 30s
    timeout http-keep-alive 30s

frontend drill
    bind 127.0.0.1:{listen}
    default_backend app

backend app
    balance roundrobin
    option httpchk
    http-check send meth GET uri /ready
    http-check expect status 200
    # A check may wait behind busy requests: 2 s to answer, 3 misses to go DOWN (the drain is explicit).
    # maxconn: at most 64 requests per app process; the rest wait in HAProxy's queue, not in uvicorn.
    timeout check 2s
    default-server check inter 1s fastinter 250ms downinter 500ms rise 2 fall 3 maxconn 64{passive}
    server blue 127.0.0.1:{blue}
    server green 127.0.0.1:{green}{"" if green_enabled else " disabled"}
"""


class HAProxy:
    """A foreground haproxy process and its runtime API (stats socket)."""

    def __init__(self, binary: str, workdir: Path, blue: int, green: int, **options) -> None:
        self.port = free_port()
        self.socket = workdir / "haproxy.sock"
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(haproxy_config(self.port, blue, green, self.socket, **options))
        self.log = open(workdir / "haproxy.log", "w")
        self.process = subprocess.Popen(
            [binary, "-db", "-f", str(self.config)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout=10, process=self.process)
        wait_for_admin_socket(self.socket, self.process)

    def command(self, line: str) -> str:
        """One runtime API command; returns its answer."""
        return runtime_command(self.socket, line)

    def servers(self) -> dict[str, dict[str, str]]:
        """`show stat` rows of the app backend's servers, by server name."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = (dict(zip(header, row, strict=False)) for row in csv.reader(lines[1:]) if row)
        return {row["svname"]: row for row in rows if row["pxname"] == "app" and row["svname"] not in
                ("FRONTEND", "BACKEND")}

    def wait_for(self, server: str, predicate, what: str, timeout: float) -> None:
        """Poll `show stat` until predicate(row) holds for the server."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.servers()[server]):
                return
            time.sleep(0.05)
        raise TimeoutError(f"haproxy: {server} not {what} after {timeout}s: {self.servers()[server]}")

    def stop(self) -> None:
        stop(self.process, timeout=10)
        self.log.close()
