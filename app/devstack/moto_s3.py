"""moto's server as a local S3 endpoint."""

from __future__ import annotations

import subprocess
import sys

from app.devstack.processes import free_port, stop, wait_for_port


class MotoServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=30, process=self.process)
        return self

    def stop(self) -> None:
        stop(self.process)
