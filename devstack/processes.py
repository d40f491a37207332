"""What the local servers share: free ports, waiting for a port, stopping processes, and `LocalServer`,
the launcher each of them (tansu, moto, redis) specialises with its command line."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, *, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop(process: subprocess.Popen | None, *, timeout: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


class LocalServer:
    """One server process listening on 127.0.0.1:`port`, kept across restarts so clients reconnect to
    it. Output goes to `log_path` (appended) or nowhere; `environment` is added to this process's."""

    start_timeout_seconds = 30.0

    def __init__(self, port: int | None = None, *, log_path: Path | None = None,
                 environment: Mapping[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.environment = dict(environment or {})
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Self:
        log = open(self.log_path, "ab") if self.log_path else None  # closed once the child holds it
        try:
            self.process = subprocess.Popen(self.command(), env={**os.environ, **self.environment},
                                            stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)
        finally:
            if log is not None:
                log.close()
        wait_for_port(self.port, timeout=self.start_timeout_seconds, process=self.process)
        return self

    def kill(self) -> None:
        """SIGKILL, like a crashed node."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        stop(self.process)
