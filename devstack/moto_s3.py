"""moto's server as a local S3 endpoint (and the other AWS APIs moto serves, e.g. for `make verify`)."""

from __future__ import annotations

import os
import subprocess
import sys

from devstack.processes import free_port, stop, wait_for_port


class MotoServer:
    def __init__(self, port: int | None = None, environment: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.environment = environment or {}
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, **self.environment}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=30, process=self.process)
        return self

    def stop(self) -> None:
        stop(self.process)
