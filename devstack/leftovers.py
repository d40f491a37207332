"""What an earlier `make up` left running when it was killed hard (kill -9, a closed terminal, a crash).

PostgreSQL under var/pg/ is reused: it is this checkout's own cluster with this checkout's data. A broker
or S3 endpoint from an earlier run is stopped: they are in-memory and on random ports, so nothing is lost
and nothing else would ever stop them. Either way `make up` says so in one line. A port held by a process
that is not ours is reported in one line instead of a pg_ctl traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from devstack.postgres import PostgresServer


class PortTaken(RuntimeError):
    """The port `make up` needs belongs to a process that is not this checkout's."""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def postgres_leftover_pid(server: PostgresServer) -> int | None:
    """The pid of a postmaster still running on `server`'s data directory, if any."""
    try:
        pid = int((server.data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) and "postgres" in _cmdline(pid) else None


def start_or_reuse_postgres(server: PostgresServer) -> str | None:
    """Start the cluster, or adopt the one an earlier run left on the same data directory.

    Returns the one-line message for the banner when it reused one; raises PortTaken when the port is held
    by something else."""
    pid = postgres_leftover_pid(server)
    if pid is not None:
        server.ensure_database()
        return (f"PostgreSQL from an earlier run (pid {pid}, {server.data_dir}) was still running on port "
                f"{server.port}: reusing it; it stops with this run")
    if port_in_use(server.port):
        raise PortTaken(f"port {server.port} (PostgreSQL of the full profile) is held by another process that is not "
                        f"{server.data_dir}'s PostgreSQL: stop it (`ss -ltnp 'sport = :{server.port}'` names it)")
    server.start()
    return None


def record_pid(pidfile: Path, pid: int) -> None:
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{pid}\n")


def stop_leftover(pidfile: Path, marker: str, what: str, timeout: float = 10.0) -> str | None:
    """Stop the process an earlier run recorded in `pidfile` if it is still running and its command line
    contains `marker` (a recycled pid belonging to something else is left alone). Returns a one-line
    message when it stopped one."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    pidfile.unlink(missing_ok=True)
    if not _alive(pid) or marker not in _cmdline(pid):
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    return f"stopped the {what} an earlier run left running (pid {pid})"
