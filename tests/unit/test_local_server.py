"""`LocalServer`, the launcher the local tansu, moto and redis servers specialise: real child processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devstack.processes import LocalServer


class _Script(LocalServer):
    """A Python one-liner as the server: `{port}` in it is replaced by the server's port."""

    start_timeout_seconds = 10.0

    def __init__(self, script: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.script = script

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script.replace("{port}", str(self.port))]


LISTEN = ("import os, socket, sys, time; print(os.environ.get('GREETING', 'none'), flush=True); "
          "s = socket.create_server(('127.0.0.1', {port})); time.sleep(60)")


def test_a_server_that_exits_before_listening_is_reported_with_its_exit_code(tmp_path: Path) -> None:
    server = _Script("print('bad flag', flush=True); raise SystemExit(3)", log_path=tmp_path / "server.log")
    with pytest.raises(RuntimeError, match=rf"exited with 3 before listening on {server.port}"):
        server.start()
    assert (tmp_path / "server.log").read_text() == "bad flag\n"


def test_start_waits_for_the_port_passes_the_environment_and_appends_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("earlier run\n")
    server = _Script(LISTEN, log_path=log, environment={"GREETING": "hello"}).start()
    try:
        assert server.process is not None and server.process.poll() is None
    finally:
        server.stop()
    assert server.process.poll() is not None
    assert log.read_text() == "earlier run\nhello\n"


def test_kill_leaves_the_port_to_a_restart_on_the_same_port() -> None:
    server = _Script(LISTEN).start()
    port = server.port
    server.kill()
    assert server.process is not None and server.process.returncode == -9
    try:
        assert server.start().port == port
    finally:
        server.stop()
