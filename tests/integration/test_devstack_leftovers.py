"""`make up PROFILE=full` after an earlier run was killed hard: the earlier run's PostgreSQL (same var/pg data
directory) is reused with a one-line message instead of a pg_ctl traceback; a port held by someone else is
reported in one line; a leftover broker is stopped (real PostgreSQL, real tansu)."""

from __future__ import annotations

import socket
from pathlib import Path

import asyncpg
import pytest

from devstack.leftovers import PortTaken, record_pid, start_or_reuse_postgres, stop_leftover
from devstack.postgres import PostgresServer
from devstack.processes import free_port
from devstack.tansu import TansuBroker

pytestmark = pytest.mark.slow


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_leftover_postgres_on_the_same_data_directory_is_reused(anyio_backend) -> None:
    port = free_port()
    earlier = PostgresServer(port=port)  # a mkdtemp root the postgres user can reach (unlike pytest's tmp_path)
    assert start_or_reuse_postgres(earlier) is None, "nothing to reuse on a fresh directory"
    try:
        # The earlier `make up` was killed: its object is gone, its postmaster is not.
        again = PostgresServer(data_root=earlier.root, port=port)
        message = start_or_reuse_postgres(again)
        assert message is not None and "\n" not in message
        assert "reusing it" in message and str(port) in message
        connection = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="sensors")
        assert await connection.fetchval("SELECT 1") == 1
        await connection.close()
    finally:
        earlier.destroy()


def test_a_port_held_by_another_process_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortTaken, match=rf"port {port} .* held by another process") as raised:
            start_or_reuse_postgres(PostgresServer(data_root=tmp_path / "pg", port=port))
    assert "\n" not in str(raised.value)


def test_a_leftover_broker_is_stopped_and_a_recycled_pid_is_left_alone(tmp_path: Path) -> None:
    broker = TansuBroker().start()
    pidfile = tmp_path / "tansu.pid"
    try:
        record_pid(pidfile, broker.process.pid)
        assert stop_leftover(pidfile, "tansu", "broker") == f"stopped the broker an earlier run left running (pid {broker.process.pid})"
        assert broker.process.wait(timeout=10) is not None
        assert not pidfile.exists()
    finally:
        broker.stop()
    record_pid(pidfile, 1)  # pid 1 is alive but is not a broker
    assert stop_leftover(pidfile, "tansu", "broker") is None
