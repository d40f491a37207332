"""The dead-letter store: readings that could not be written to the database, kept durably
until the replayer moves them in.

One object per letter (`app.storage.dead_letter_writer` coalesces a task's failed groups into one
letter): `<shard>/<unix-ns>-<uuid>-r<readings>.json` holding {"schema_version": 1, "readings":
[...]} with each reading's anomaly verdict. The shard (`00`..`NN`, from the uuid) spreads letters
over several prefixes, because S3 scales request rates per prefix (about 3,500 PUT/DELETE and 5,500
GET per second each); the reading count in the name lets the backlog be measured in readings from a
listing alone. Locally a directory with one sub-directory per shard (written to a temporary name,
fsynced, then renamed, so a crash never leaves a half-written letter); in AWS the data-lake bucket
under `dead-letter/service/` (the archiver keeps `dead-letter/archiver/`). Listing discovers every
sub-prefix except `quarantine/`, so letters of an older layout moved under any sub-prefix are
replayed too. Blocking I/O runs in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config

from app.readings import DEVICE_METADATA, DeviceMetadata
from app.storage.repository import ScoredReading

SCHEMA_VERSION = 1
QUARANTINE = "quarantine"
DEFAULT_SHARDS = 8
S3_DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys
_NAME = re.compile(r"(?:(?P<shard>[^/]+)/)?(?P<ns>\d{20})-[0-9a-f]{32}(?:-r(?P<readings>\d+))?\.json")


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


def new_name(readings: int, shards: int = DEFAULT_SHARDS) -> str:
    """`<shard>/<ns>-<uuid>-r<readings>.json`: sortable by creation time within a shard, unique across
    processes; the shard comes from the random uuid, so every task spreads its letters evenly."""
    unique = uuid.uuid4()
    return f"{unique.int % shards:02d}/{time.time_ns():020d}-{unique.hex}-r{readings}.json"


def readings_in(name: str) -> int:
    """Readings a letter holds, from its name (letters of the older layout carry no count: 1)."""
    match = _NAME.fullmatch(name)
    return int(match["readings"]) if match and match["readings"] else 1


def written_at(name: str) -> float | None:
    """Epoch seconds the letter was written, from its name."""
    match = _NAME.fullmatch(name)
    return int(match["ns"]) / 1e9 if match else None


class DeadLetterStore(Protocol):
    async def put(self, readings: list[ScoredReading]) -> str: ...
    async def names(self) -> list[str]: ...
    async def get(self, name: str) -> list[ScoredReading] | None: ...  # None: gone (replayed elsewhere)
    async def delete_many(self, names: list[str]) -> None: ...
    async def quarantine(self, name: str, reason: str) -> None: ...


class LocalDeadLetterStore:
    def __init__(self, directory: Path, *, shards: int = DEFAULT_SHARDS) -> None:
        self.directory = directory
        self.shards = shards
        self.quarantine_dir = directory / QUARANTINE

    async def put(self, readings: list[ScoredReading]) -> str:
        return await asyncio.to_thread(self._put, encode(readings), new_name(len(readings), self.shards))

    def _put(self, payload: bytes, name: str) -> str:
        target = self.directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f".{target.name}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        directory_fd = os.open(target.parent, os.O_RDONLY)
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
        found = []
        for entry in self.directory.iterdir():
            if entry.is_dir() and entry.name != QUARANTINE:
                found += [f"{entry.name}/{p.name}" for p in entry.iterdir() if p.suffix == ".json" and p.is_file()]
            elif entry.suffix == ".json" and entry.is_file():
                found.append(entry.name)
        return sorted(found)

    async def get(self, name: str) -> list[ScoredReading] | None:
        try:
            raw = await asyncio.to_thread((self.directory / name).read_bytes)
        except FileNotFoundError:
            return None
        return decode(raw)

    async def delete_many(self, names: list[str]) -> None:
        def unlink_all() -> None:
            for name in names:
                (self.directory / name).unlink(missing_ok=True)  # another replayer may have been first

        await asyncio.to_thread(unlink_all)

    async def quarantine(self, name: str, reason: str) -> None:
        def move() -> None:
            target = self.quarantine_dir / name.replace("/", "-")
            self.quarantine_dir.mkdir(parents=True, exist_ok=True)
            os.replace(self.directory / name, target)
            target.with_name(f"{target.name}.reason.txt").write_text(reason)

        await asyncio.to_thread(move)


class S3DeadLetterStore:
    """Letters under `prefix` in one bucket. Listing and fetching run in a thread pool of their own
    (`concurrency` calls in flight), so a replay pass lists every shard and fetches many letters at
    once while each S3 call waits tens of milliseconds."""

    def __init__(self, *, bucket: str, prefix: str, region: str, endpoint_url: str | None = None,
                 shards: int = DEFAULT_SHARDS, concurrency: int = 32) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.shards = shards
        self.client = boto3.client("s3", region_name=region, endpoint_url=endpoint_url,
                                   config=Config(max_pool_connections=concurrency))
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="dead-letter-s3")

    async def _call(self, function, /, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: function(*args, **kwargs))

    async def put(self, readings: list[ScoredReading]) -> str:
        name = new_name(len(readings), self.shards)
        await self._call(self.client.put_object, Bucket=self.bucket, Key=self.prefix + name, Body=encode(readings),
                         ContentType="application/json")
        return name

    def _list(self, prefix: str, delimiter: bool) -> tuple[list[str], list[str]]:
        """(keys relative to self.prefix, sub-prefixes) under `prefix`."""
        keys, prefixes = [], []
        extra = {"Delimiter": "/"} if delimiter else {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, **extra):
            keys += [o["Key"][len(self.prefix):] for o in page.get("Contents", []) if o["Key"].endswith(".json")]
            prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return keys, prefixes

    async def names(self) -> list[str]:
        top, shards = await self._call(self._list, self.prefix, True)
        shards = [p for p in shards if p != f"{self.prefix}{QUARANTINE}/"]
        listed = await asyncio.gather(*(self._call(self._list, shard, False) for shard in shards))
        return sorted(top + [key for keys, _ in listed for key in keys])

    async def get(self, name: str) -> list[ScoredReading] | None:
        def fetch() -> bytes | None:
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()
            except self.client.exceptions.NoSuchKey:
                return None

        raw = await self._call(fetch)
        return None if raw is None else decode(raw)

    async def delete_many(self, names: list[str]) -> None:
        def delete(chunk: list[str]) -> None:
            answer = self.client.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": self.prefix + name} for name in chunk], "Quiet": True})
            if answer.get("Errors"):
                raise OSError(f"S3 refused to delete {len(answer['Errors'])} dead letters: {answer['Errors'][:3]}")

        await asyncio.gather(*(self._call(delete, names[i:i + S3_DELETE_BATCH])
                               for i in range(0, len(names), S3_DELETE_BATCH)))

    async def quarantine(self, name: str, reason: str) -> None:
        def move() -> None:
            target = f"{self.prefix}{QUARANTINE}/{name.replace('/', '-')}"
            self.client.copy_object(Bucket=self.bucket, Key=target,
                                    CopySource={"Bucket": self.bucket, "Key": self.prefix + name},
                                    Metadata={"reason": reason[:1024]}, MetadataDirective="REPLACE")
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name)

        await self._call(move)
