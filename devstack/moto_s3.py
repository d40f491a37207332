"""moto's server as a local S3 endpoint (and the other AWS APIs moto serves, e.g. for `make verify`)."""

from __future__ import annotations

import sys

from devstack.processes import LocalServer


class MotoServer(LocalServer):
    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
