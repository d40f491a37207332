"""A throw-away `redis-server` on 127.0.0.1: the local stand-in for ElastiCache for Valkey (same
protocol, same Lua scripting). No persistence (`--save ''`, no AOF): a restart starts empty, like a
cache after a failover or eviction, and the app rebuilds its windows from PostgreSQL.

`make redis` installs the Debian package when the binary is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from devstack.processes import free_port, stop, wait_for_port


def server_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")
    if not found:
        raise RuntimeError("redis-server not found: run `make redis` (apt-get install redis-server)")
    return found


class RedisServer:
    """`start()`/`stop()`/`kill()`; the same port across restarts, so clients reconnect to it."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.binary = server_binary()
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--protected-mode", "yes", "--daemonize", "no", "--maxmemory-policy", "volatile-lru"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout=15, process=self.process)
        return self

    def kill(self) -> None:
        """SIGKILL, like a crashed node: in-memory state is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        stop(self.process)
