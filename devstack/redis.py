"""A throw-away `redis-server` on 127.0.0.1: the local stand-in for ElastiCache for Valkey (same
protocol, same Lua scripting). No persistence (`--save ''`, no AOF): a restart starts empty, like a
cache after a failover or eviction, and the app rebuilds its windows from PostgreSQL.

`make redis` installs the Debian package when the binary is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

from devstack.processes import LocalServer


def server_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")
    if not found:
        raise RuntimeError("redis-server not found: run `make redis` (apt-get install redis-server)")
    return found


class RedisServer(LocalServer):
    """`start()`/`stop()`/`kill()` (SIGKILL: in-memory state is gone); the port stays across restarts."""

    start_timeout_seconds = 15.0

    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        super().__init__(port, log_path=log_path)
        self.binary = server_binary()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--protected-mode", "yes", "--daemonize", "no", "--maxmemory-policy", "volatile-lru"]
