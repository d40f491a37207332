"""Where lake objects go: an S3 bucket (deployed, and moto locally) or a local directory (embedded profile).

Both take the same keys. Configuration comes from the environment:
- LAKE_DIR: write under this directory (takes precedence; the embedded local profile);
- otherwise DATA_LAKE_BUCKET (required) and optionally S3_ENDPOINT_URL (moto).

Writers raise on any failure (bucket missing, endpoint unreachable, disk full): the handler lets it
propagate so that the event source retries the whole batch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol


class LakeWriter(Protocol):
    def put(self, key: str, body: bytes, content_type: str) -> None:
        """Store `body` under `key`, replacing any object already there."""

    def describe(self) -> str:
        """Where the objects go, for logs."""


class S3LakeWriter:
    def __init__(self, bucket: str, client: Any) -> None:
        self.bucket = bucket
        self.client = client

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def describe(self) -> str:
        return f"s3://{self.bucket}/"


class LocalDirectoryLakeWriter:
    """Objects as files under `root`; a reader never sees a half-written file (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def put(self, key: str, body: bytes, content_type: str) -> None:
        target = self.path_for(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def path_for(self, key: str) -> Path:
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root) or target == self.root:
            raise ValueError(f"object key {key!r} escapes the lake directory {self.root}")
        return target

    def describe(self) -> str:
        return f"{self.root}/"


@dataclass(frozen=True, slots=True)
class LakeTarget:
    bucket: str | None
    s3_endpoint_url: str | None
    lake_dir: str | None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> LakeTarget:
        return cls(
            bucket=environ.get("DATA_LAKE_BUCKET") or None,
            s3_endpoint_url=environ.get("S3_ENDPOINT_URL") or None,
            lake_dir=environ.get("LAKE_DIR") or None,
        )


def lake_writer_from_environment(environ: Mapping[str, str] | None = None) -> LakeWriter:
    """The writer the environment asks for; one per distinct target, reused across invocations."""
    return _writer_for(LakeTarget.from_environment(os.environ if environ is None else environ))


def forget_lake_writers() -> None:
    """Drop the cached writers (their S3 clients), e.g. after the credentials or the endpoint changed."""
    _writer_for.cache_clear()


@lru_cache(maxsize=8)
def _writer_for(target: LakeTarget) -> LakeWriter:
    if target.lake_dir:
        return LocalDirectoryLakeWriter(Path(target.lake_dir))
    if not target.bucket:
        raise RuntimeError("the archiver needs DATA_LAKE_BUCKET (or LAKE_DIR for a local directory)")
    return S3LakeWriter(target.bucket, _s3_client(target.s3_endpoint_url))


def _s3_client(endpoint_url: str | None) -> Any:
    # Imported here: the local-directory writer (embedded profile) needs no AWS SDK.
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    # Fail within seconds rather than the SDK's 60 s defaults: the event source retries the batch.
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)
