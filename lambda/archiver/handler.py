"""The archiver Lambda: MSK event source mapping batches of readings → Parquet objects in the S3 data lake.

Contract
- Event: the documented MSK event (see msk_records). Values are the reading wire format of
  contracts.reading, the only repository module this bundle contains besides its own.
- Per (topic, partition, UTC hour of the reading) one Parquet object under raw/, its anomalies also
  under processed/anomalies/, both named after the batch's offsets (see lake_layout): an identical
  batch retried overwrites the same objects.
- A record that cannot be decoded is written as JSON to dead-letter/archiver/ with its reason and
  coordinates; the rest of the batch proceeds.
- Returns {"written", "dead_lettered", "anomalies", "objects", "dead_letters"} (counts and keys).
- Raises when the lake cannot be written (S3 unreachable, bucket missing): the event source then
  retries the whole batch.

Environment: DATA_LAKE_BUCKET and optionally S3_ENDPOINT_URL, or LAKE_DIR (see lake_writer).
Observability: Powertools structured logs (keys kafka_topic/kafka_partition while a partition is
written) and EMF metrics in namespace SensorPlatform, service archiver (ARCHIVER_METRICS).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from lake_layout import LakeObject, dead_letter_object, group_by_partition_hour, raw_and_anomaly_objects
from lake_writer import LakeWriter, lake_writer_from_environment
from msk_records import DecodedRecord, RejectedRecord, classify_records

SERVICE = "archiver"
METRICS_NAMESPACE = "SensorPlatform"

ARCHIVED_RECORDS = "ArchivedRecords"
ARCHIVE_DEAD_LETTERS = "ArchiveDeadLetters"
ARCHIVE_LAG_SECONDS = "ArchiveLagSeconds"
# Every metric this function emits; the monitoring code (alarms, dashboards) checks against it.
ARCHIVER_METRICS = (ARCHIVED_RECORDS, ARCHIVE_DEAD_LETTERS, ARCHIVE_LAG_SECONDS)
# Parallel PUTs per invocation: a batch spans few partitions and hours, but dead letters may be many.
MAX_CONCURRENT_PUTS = 8

logger = Logger(service=SERVICE)
# Powertools' own handler writes every line; it keeps root handlers that exist at import from repeating
# them, but not ones installed later (the app's JSON logging, when the handler runs inside the local stack).
logging.getLogger(SERVICE).propagate = False
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)


@dataclass(slots=True)
class ArchiveSummary:
    written: int = 0
    dead_lettered: int = 0
    anomalies: int = 0
    objects: list[str] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    summary = archive_event(event, lake_writer_from_environment())
    return asdict(summary)


def archive_event(event: Mapping[str, Any], writer: LakeWriter, *, now: datetime | None = None) -> ArchiveSummary:
    """Write one event's readings and dead letters through `writer`; emits the metrics."""
    now = now or datetime.now(UTC)
    decoded, rejected = classify_records(event)
    logger.info("archiving batch", extra={
        "event_source_arn": event.get("eventSourceArn"), "records": len(decoded) + len(rejected),
        "target": writer.describe(),
    })
    # Emitted before writing: during an outage the lag keeps growing while every attempt fails.
    _emit_lag(decoded, rejected, now)

    groups = [(group, rows, raw_and_anomaly_objects(group, rows)) for group, rows in group_by_partition_hour(decoded).items()]
    letters = [
        (record, dead_letter_object(record, event_source_arn=event.get("eventSourceArn"), now=now)) for record in rejected
    ]
    _put_all(writer, [lake_object for _group, _rows, objects in groups for lake_object in objects]
             + [letter for _record, letter in letters])

    summary = ArchiveSummary(dead_lettered=len(rejected))
    for group, rows, objects in groups:
        with _partition_log_keys(group.topic, group.partition):
            for lake_object in objects:
                logger.info("wrote lake object", extra={
                    "key": lake_object.key, "rows": lake_object.rows, "bytes": len(lake_object.body),
                    "first_offset": rows[0].coordinates.offset, "last_offset": rows[-1].coordinates.offset,
                })
                summary.objects.append(lake_object.key)
        summary.written += len(rows)
        summary.anomalies += sum(1 for record in rows if record.reading["is_anomaly"])
    for record, letter in letters:
        with _partition_log_keys(record.coordinates.topic, record.coordinates.partition):
            logger.warning("dead-lettered a record", extra={
                "offset": record.coordinates.offset, "field": record.field, "reason": record.reason, "key": letter.key,
            })
        summary.dead_letters.append(letter.key)

    metrics.add_metric(name=ARCHIVED_RECORDS, unit=MetricUnit.Count, value=summary.written)
    metrics.add_metric(name=ARCHIVE_DEAD_LETTERS, unit=MetricUnit.Count, value=summary.dead_lettered)
    logger.info("archived batch", extra={
        "written": summary.written, "dead_lettered": summary.dead_lettered, "anomalies": summary.anomalies,
        "objects": len(summary.objects),
    })
    return summary


def _put_all(writer: LakeWriter, lake_objects: list[LakeObject]) -> None:
    """Write the objects concurrently (each S3 PUT is a round trip); raise the first failure after all
    attempts finished, so the event source retries the batch. Objects already written are overwritten then."""
    if len(lake_objects) <= 1:
        for lake_object in lake_objects:
            writer.put(lake_object.key, lake_object.body, lake_object.content_type)
        return
    with ThreadPoolExecutor(max_workers=min(MAX_CONCURRENT_PUTS, len(lake_objects))) as pool:
        puts = [pool.submit(writer.put, item.key, item.body, item.content_type) for item in lake_objects]
    for put in puts:  # all finished: leaving the pool waited for them
        put.result()


def _emit_lag(decoded: list[DecodedRecord], rejected: list[RejectedRecord], now: datetime) -> None:
    """ArchiveLagSeconds: now minus the oldest Kafka record timestamp of the batch (time since publish,
    not the device's clock, which may be hours behind for replayed readings)."""
    timestamps = [record.kafka_timestamp_ms for record in [*decoded, *rejected] if record.kafka_timestamp_ms]
    if timestamps:
        lag_seconds = max(0.0, now.timestamp() - min(timestamps) / 1000)
        metrics.add_metric(name=ARCHIVE_LAG_SECONDS, unit=MetricUnit.Seconds, value=lag_seconds)


@contextmanager
def _partition_log_keys(topic: str, partition: int) -> Iterator[None]:
    logger.append_keys(kafka_topic=topic, kafka_partition=partition)
    try:
        yield
    finally:
        logger.remove_keys(["kafka_topic", "kafka_partition"])

