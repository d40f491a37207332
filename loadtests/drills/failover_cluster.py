"""An RDS Multi-AZ stand-in for the failover drill: a PostgreSQL primary, a hot standby that it
replicates to synchronously (`synchronous_standby_names`, so a commit is acknowledged only once the
standby has flushed it, as Multi-AZ does), and ONE endpoint the app connects to: HAProxy in TCP mode,
playing the DNS name that RDS moves to the new primary.

`fail()` crashes the primary (`pg_ctl stop -m immediate`) and fences it: the endpoint puts it in
maintenance and cuts every session through it, and it is never started again. `promote()` promotes
the standby (`pg_ctl promote`) and moves the endpoint to it. Between the two the endpoint leads
nowhere, like an RDS endpoint during its 60-120 s failover.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from devstack.postgres import DATABASE, PostgresServer
from devstack.processes import free_port, stop, wait_for_port
from loadtests.harness.haproxy import runtime_command, wait_for_admin_socket

STANDBY_NAME = "standby"
REPLICATION_CONF = "wal_level = replica\nmax_wal_senders = 5\nwal_keep_size = '512MB'\nhot_standby = on\n"
APP_CONNECTIONS = ("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                   "AND application_name LIKE 'sensor-%'")


def endpoint_config(listen: int, primary: int, standby: int, stats_socket: Path) -> str:
    """TCP pass-through; no health checks: the drill moves the endpoint explicitly, as RDS moves DNS."""
    return f"""\
global
    maxconn 2000
    stats socket {stats_socket} mode 600 level admin

defaults
    mode tcp
    timeout connect 1s
    timeout client 1h
    timeout server 1h

frontend database
    bind 127.0.0.1:{listen}
    default_backend database

backend database
    server primary 127.0.0.1:{primary}
    server standby 127.0.0.1:{standby} disabled
"""


class DatabaseEndpoint:
    """HAProxy (TCP) in front of the primary; `move_to_standby()` is the failover's DNS change."""

    def __init__(self, binary: str, workdir: Path, primary: int, standby: int) -> None:
        self.port = free_port()
        self.socket = workdir / "db-endpoint.sock"
        config = workdir / "db-endpoint.cfg"
        config.write_text(endpoint_config(self.port, primary, standby, self.socket))
        self.log = open(workdir / "db-endpoint.log", "w")
        self.process = subprocess.Popen(
            [binary, "-db", "-f", str(config)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout=10, process=self.process)
        wait_for_admin_socket(self.socket, self.process)

    def command(self, line: str) -> str:
        return runtime_command(self.socket, line)

    def fence_primary(self) -> None:
        """No new connection reaches the old primary, and every open one is cut."""
        self.command("set server database/primary state maint")
        self.command("shutdown sessions server database/primary")

    def move_to_standby(self) -> None:
        self.command("set server database/standby state ready")

    def stop(self) -> None:
        stop(self.process, timeout=10)
        self.log.close()


class ReplicatedDatabase:
    """Primary + synchronous hot standby + endpoint; `url` is the endpoint (what the app and the
    drill's reconciliation use before and after the failover)."""

    def __init__(self, haproxy: str, workdir: Path) -> None:
        self.haproxy = haproxy
        self.workdir = workdir
        self.primary = PostgresServer(extra_conf=REPLICATION_CONF)
        self.standby: PostgresServer | None = None
        self.endpoint: DatabaseEndpoint | None = None
        self.promoted = False

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.endpoint.port}/{DATABASE}"

    def start(self) -> ReplicatedDatabase:
        self.primary.start()  # creates the database before synchronous commit is switched on
        self.standby = self._clone_standby()
        self.standby.start()
        self._sql(self.primary.port, f"ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 ({STANDBY_NAME})'")
        self._sql(self.primary.port, "SELECT pg_reload_conf()")
        self._wait_for_sync_standby()
        self.endpoint = DatabaseEndpoint(self.haproxy, self.workdir, self.primary.port, self.standby.port)
        return self

    def _clone_standby(self) -> PostgresServer:
        root = Path(tempfile.mkdtemp(prefix="sensor-pg-standby-"))
        owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if owner is not None:
            os.chmod(root, 0o755)  # noqa: S103 - the postgres user must traverse it (as in devstack.postgres)
            os.chown(root, owner.pw_uid, owner.pw_gid)
        self.primary.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
                         "-D", str(root / "data"), "-X", "stream", "-c", "fast")
        data = root / "data"
        with open(data / "postgresql.auto.conf", "a") as conf:
            conf.write(f"\nprimary_conninfo = 'host=127.0.0.1 port={self.primary.port} user=postgres "
                       f"application_name={STANDBY_NAME}'\n")
        (data / "standby.signal").touch()
        if owner is not None:
            os.chown(data / "standby.signal", owner.pw_uid, owner.pw_gid)
        return PostgresServer(data_root=root)

    def _wait_for_sync_standby(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self._sql(self.primary.port, "SELECT sync_state FROM pg_stat_replication "
                                                 "WHERE application_name = $1", STANDBY_NAME)
            if state == "sync":
                return
            time.sleep(0.2)
        raise TimeoutError(f"the standby did not become a synchronous standby in {timeout}s (state {state!r})")

    def app_connections(self, port: int) -> int:
        return int(self._sql(port, APP_CONNECTIONS) or 0)

    def fail(self) -> int:
        """Crash and fence the primary; returns the app connections it held (all now dead)."""
        stale = self.app_connections(self.primary.port)
        self.primary.stop("immediate")
        self.endpoint.fence_primary()
        return stale

    def promote(self) -> None:
        """The standby becomes the primary and the endpoint moves to it."""
        self.standby.run("pg_ctl", "-D", str(self.standby.data_dir), "-w", "-t", "60", "promote")
        self.promoted = True
        self.endpoint.move_to_standby()

    def current_primary_port(self) -> int:
        return self.standby.port if self.promoted else self.primary.port

    @staticmethod
    def _sql(port: int, statement: str, *arguments: object) -> str | None:
        async def run() -> str | None:
            connection = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
            try:
                value = await connection.fetchval(statement, *arguments)
            finally:
                await connection.close()
            return None if value is None else str(value)

        return asyncio.run(run())

    def destroy(self) -> None:
        if self.endpoint is not None:
            self.endpoint.stop()
        for server in (self.standby, self.primary):
            if server is not None:
                server.stop("immediate")
                shutil.rmtree(server.root, ignore_errors=True)
