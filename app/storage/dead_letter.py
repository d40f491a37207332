"""The dead-letter store: readings that could not be written to the database, kept durably
until the replayer moves them in.

One object per failed group: `<unix-ns>-<uuid>.json` holding {"schema_version": 1, "readings":
[...]} with each reading's anomaly verdict. Locally a directory (written to a temporary name,
fsynced, then renamed, so a crash never leaves a half-written letter); in AWS the data-lake
bucket under `dead-letter/`. Blocking I/O runs in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import boto3

from app.readings import DEVICE_METADATA, DeviceMetadata
from app.storage.repository import ScoredReading

SCHEMA_VERSION = 1


def encode(readings: list[ScoredReading]) -> bytes:
    return json.dumps({
        "schema_version": SCHEMA_VERSION,
        "readings": [
            {"device_id": r.device_id, "tag": r.tag, "timestamp": r.ts.isoformat(), "value": r.value,
             "is_anomaly": r.is_anomaly, "z_score": r.z_score,
             **({"metadata": dict(zip(DEVICE_METADATA, r.metadata_values(), strict=True))} if r.metadata else {})}
            for r in readings
        ],
    }).encode()


def decode(raw: bytes) -> list[ScoredReading]:
    document: dict[str, Any] = json.loads(raw)
    if document.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"unsupported dead-letter schema_version {document.get('schema_version')!r}")
    return [
        ScoredReading(r["device_id"], r["tag"], datetime.fromisoformat(r["timestamp"]), float(r["value"]),
                      bool(r["is_anomaly"]), r["z_score"],
                      DeviceMetadata(**r["metadata"]) if r.get("metadata") else None)
        for r in document["readings"]
    ]


def new_name() -> str:
    # Sortable by creation time, unique across processes.
    return f"{time.time_ns():020d}-{uuid.uuid4().hex}.json"


class DeadLetterStore(Protocol):
    async def put(self, readings: list[ScoredReading]) -> str: ...
    async def names(self) -> list[str]: ...
    async def get(self, name: str) -> list[ScoredReading]: ...
    async def delete(self, name: str) -> None: ...
    async def quarantine(self, name: str, reason: str) -> None: ...


class LocalDeadLetterStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.quarantine_dir = directory / "quarantine"

    async def put(self, readings: list[ScoredReading]) -> str:
        return await asyncio.to_thread(self._put, encode(readings))

    def _put(self, payload: bytes) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = new_name()
        temporary = self.directory / f".{name}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.directory / name)
        directory_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
        return name

    async def names(self) -> list[str]:
        return await asyncio.to_thread(self._names)

    def _names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if p.suffix == ".json" and p.is_file())

    async def get(self, name: str) -> list[ScoredReading]:
        return decode(await asyncio.to_thread((self.directory / name).read_bytes))

    async def delete(self, name: str) -> None:
        await asyncio.to_thread((self.directory / name).unlink, True)

    async def quarantine(self, name: str, reason: str) -> None:
        def move() -> None:
            self.quarantine_dir.mkdir(parents=True, exist_ok=True)
            os.replace(self.directory / name, self.quarantine_dir / name)
            (self.quarantine_dir / f"{name}.reason.txt").write_text(reason)

        await asyncio.to_thread(move)


class S3DeadLetterStore:
    def __init__(self, *, bucket: str, prefix: str, region: str, endpoint_url: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = boto3.client("s3", region_name=region, endpoint_url=endpoint_url)

    async def put(self, readings: list[ScoredReading]) -> str:
        name = new_name()
        await asyncio.to_thread(
            self.client.put_object, Bucket=self.bucket, Key=self.prefix + name, Body=encode(readings),
            ContentType="application/json",
        )
        return name

    async def names(self) -> list[str]:
        def list_all() -> list[str]:
            found = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                found += [o["Key"][len(self.prefix):] for o in page.get("Contents", [])
                          if "/" not in o["Key"][len(self.prefix):]]
            return sorted(found)

        return await asyncio.to_thread(list_all)

    async def get(self, name: str) -> list[ScoredReading]:
        response = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=self.prefix + name)
        return decode(await asyncio.to_thread(response["Body"].read))

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self.prefix + name)

    async def quarantine(self, name: str, reason: str) -> None:
        def move() -> None:
            target = f"{self.prefix}quarantine/{name}"
            self.client.copy_object(Bucket=self.bucket, Key=target,
                                    CopySource={"Bucket": self.bucket, "Key": self.prefix + name},
                                    Metadata={"reason": reason[:1024]}, MetadataDirective="REPLACE")
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name)

        await asyncio.to_thread(move)
