"""What the archiver writes to the data lake: object keys, the Parquet schema, and dead-letter documents.

    raw/year=YYYY/month=MM/day=DD/hour=HH/<topic>-<partition>-<firstOffset>-<lastOffset>.parquet
    processed/anomalies/year=YYYY/.../hour=HH/<same name>.parquet   (the anomalous rows of that object)
    dead-letter/archiver/<topic>-<partition>-<offset>.json

One raw object per (topic, partition, UTC hour of the reading's timestamp) of a batch. Its name is made
of the batch's own coordinates only, so an identical batch delivered again overwrites its objects
instead of adding copies. (A redelivery cut at different offsets writes differently named objects;
readers deduplicate on `id`, which is unique per reading.)
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
from msk_records import DecodedRecord, RejectedRecord

RAW_PREFIX = "raw"
ANOMALIES_PREFIX = "processed/anomalies"
DEAD_LETTER_PREFIX = "dead-letter/archiver"
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
JSON_CONTENT_TYPE = "application/json"
# Bumped only with an incompatible change of PARQUET_SCHEMA; within a version columns are only added.
LAKE_SCHEMA_VERSION = "1"

DEVICE_METADATA_COLUMNS = ("device_type", "latitude", "longitude", "status", "firmware_version")
PARQUET_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("is_anomaly", pa.bool_(), nullable=False),
        pa.field("z_score", pa.float64(), nullable=True),
        # Seed 004's device metadata (added within schema version 1: null for plain readings).
        pa.field("device_type", pa.string(), nullable=True),
        pa.field("latitude", pa.float64(), nullable=True),
        pa.field("longitude", pa.float64(), nullable=True),
        pa.field("status", pa.string(), nullable=True),
        pa.field("firmware_version", pa.string(), nullable=True),
        pa.field("kafka_topic", pa.string(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
    ],
    metadata={"sensor_platform.lake_schema_version": LAKE_SCHEMA_VERSION},
)


@dataclass(frozen=True, slots=True, order=True)
class HourGroup:
    """The rows of one raw object: one topic-partition, one UTC hour."""

    topic: str
    partition: int
    hour: datetime


@dataclass(frozen=True, slots=True)
class LakeObject:
    key: str
    body: bytes
    content_type: str
    rows: int


def group_by_partition_hour(records: Iterable[DecodedRecord]) -> dict[HourGroup, list[DecodedRecord]]:
    """Records grouped per object, each group sorted by offset (the order they were produced in)."""
    groups: dict[HourGroup, list[DecodedRecord]] = defaultdict(list)
    for record in records:
        hour = record.reading["timestamp"].astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        groups[HourGroup(record.coordinates.topic, record.coordinates.partition, hour)].append(record)
    return {
        group: sorted(rows, key=lambda record: record.coordinates.offset) for group, rows in sorted(groups.items())
    }


def object_name(group: HourGroup, rows: Sequence[DecodedRecord]) -> str:
    first, last = rows[0].coordinates.offset, rows[-1].coordinates.offset
    return f"{group.topic}-{group.partition}-{first}-{last}.parquet"


def hour_path(hour: datetime) -> str:
    return f"year={hour:%Y}/month={hour:%m}/day={hour:%d}/hour={hour:%H}"


def raw_and_anomaly_objects(group: HourGroup, rows: Sequence[DecodedRecord]) -> list[LakeObject]:
    """The raw object of a group and, when it holds anomalies, their copy under processed/anomalies."""
    name = object_name(group, rows)
    partition_path = hour_path(group.hour)
    objects = [LakeObject(f"{RAW_PREFIX}/{partition_path}/{name}", to_parquet(rows), PARQUET_CONTENT_TYPE, len(rows))]
    anomalies = [record for record in rows if record.reading["is_anomaly"]]
    if anomalies:
        objects.append(LakeObject(
            f"{ANOMALIES_PREFIX}/{partition_path}/{name}", to_parquet(anomalies), PARQUET_CONTENT_TYPE, len(anomalies)
        ))
    return objects


def to_parquet(rows: Sequence[DecodedRecord]) -> bytes:
    readings = [record.reading for record in rows]
    columns = {
        "id": [reading["id"] for reading in readings],
        "device_id": [reading["device_id"] for reading in readings],
        "tag": [reading["tag"] for reading in readings],
        "timestamp": [reading["timestamp"] for reading in readings],
        "value": [reading["value"] for reading in readings],
        "is_anomaly": [reading["is_anomaly"] for reading in readings],
        "z_score": [reading["z_score"] for reading in readings],
        **{name: [reading.get(name) for reading in readings] for name in DEVICE_METADATA_COLUMNS},
        "kafka_topic": [record.coordinates.topic for record in rows],
        "kafka_partition": [record.coordinates.partition for record in rows],
        "kafka_offset": [record.coordinates.offset for record in rows],
    }
    table = pa.Table.from_pydict(columns, schema=PARQUET_SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def dead_letter_object(rejected: RejectedRecord, *, event_source_arn: str | None, now: datetime) -> LakeObject:
    coordinates = rejected.coordinates
    document = {
        "reason": rejected.reason,
        "field": rejected.field,
        "topic": coordinates.topic,
        "partition": coordinates.partition,
        "offset": coordinates.offset,
        "kafka_timestamp_ms": rejected.kafka_timestamp_ms,
        "key_base64": rejected.raw_key,
        "value_base64": rejected.raw_value,
        "event_source_arn": event_source_arn,
        "dead_lettered_at": now.astimezone(UTC).isoformat(),
    }
    key = f"{DEAD_LETTER_PREFIX}/{coordinates.topic}-{coordinates.partition}-{coordinates.offset}.json"
    body = json.dumps(document, indent=2, ensure_ascii=False).encode()
    return LakeObject(key, body, JSON_CONTENT_TYPE, 1)
