"""Where the drills look for acknowledged readings: the database rows and the lake's Parquet objects,
as (reading number, id) pairs for `reconcile`.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import asyncpg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MICROSECOND = timedelta(microseconds=1)


async def database_records(database_url: str, base: datetime, prefix: str) -> list[tuple[int, int]]:
    """(reading number, id) of the drill's rows; the number is ts - base in microseconds."""
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await connection.fetch("SELECT id, ts FROM readings WHERE device_id LIKE $1", prefix + "%")
    finally:
        await connection.close()
    return [((row["ts"] - base) // MICROSECOND, row["id"]) for row in rows]


class LakeReader:
    """(reading number, id) of every record in the lake's raw Parquet objects (each object version read once)."""

    def __init__(self, client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        self.objects: dict[str, tuple[str, pa.Table]] = {}

    def records(self, base: datetime, prefix: str) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="raw/"):
            for item in page.get("Contents", []):
                key, etag = item["Key"], item["ETag"]
                if key not in self.objects or self.objects[key][0] != etag:
                    body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                    columns = ["id", "device_id", "timestamp"]
                    self.objects[key] = (etag, pq.read_table(io.BytesIO(body), columns=columns))
                table = self.objects[key][1]
                mine = table.filter(pc.starts_with(table.column("device_id"), prefix))
                found += [((moment - base) // MICROSECOND, reading_id) for moment, reading_id in
                          zip(mine.column("timestamp").to_pylist(), mine.column("id").to_pylist(), strict=True)]
        return found
