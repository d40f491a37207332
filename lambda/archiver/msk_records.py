"""Reading an MSK event source mapping event: each record's coordinates, its decoded reading, or why
it cannot be archived.

The event is the documented shape of the Lambda event source for Amazon MSK:

    {"eventSource": "aws:kafka", "eventSourceArn": "...", "bootstrapServers": "...",
     "records": {"<topic>-<partition>": [{"topic": ..., "partition": ..., "offset": ...,
                 "timestamp": <ms>, "timestampType": "CREATE_TIME", "key": <base64>,
                 "value": <base64>, "headers": [{"name": [byte, ...]}]}]}}

A record whose value cannot be decoded (bad base64, not JSON, failing `decode_reading`) is a
`RejectedRecord`, to be dead-lettered. An event that lacks the coordinates themselves is not
something AWS sends: it raises `InvalidEvent`, failing the whole invocation.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.reading import InvalidReadingMessage, ReadingMessage, decode_reading


class InvalidEvent(ValueError):
    """The event is not an MSK event source mapping event (a bug in whatever built it)."""


@dataclass(frozen=True, slots=True, order=True)
class Coordinates:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class DecodedRecord:
    coordinates: Coordinates
    reading: ReadingMessage
    kafka_timestamp_ms: int | None


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    coordinates: Coordinates
    field: str
    reason: str
    raw_key: str | None
    raw_value: str | None
    kafka_timestamp_ms: int | None


def classify_records(event: Mapping[str, Any]) -> tuple[list[DecodedRecord], list[RejectedRecord]]:
    """Every record of the event, decoded or rejected, in event order."""
    decoded: list[DecodedRecord] = []
    rejected: list[RejectedRecord] = []
    for record in iter_records(event):
        coordinates = record_coordinates(record)
        timestamp_ms = _kafka_timestamp_ms(record)
        try:
            reading = decode_reading(_base64_value(record))
        except InvalidReadingMessage as problem:
            rejected.append(RejectedRecord(
                coordinates=coordinates,
                field=problem.field,
                reason=str(problem),
                raw_key=_raw_text(record.get("key")),
                raw_value=_raw_text(record.get("value")),
                kafka_timestamp_ms=timestamp_ms,
            ))
            continue
        decoded.append(DecodedRecord(coordinates, reading, timestamp_ms))
    return decoded, rejected


def iter_records(event: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    records_by_partition = event.get("records") if isinstance(event, Mapping) else None
    if not isinstance(records_by_partition, Mapping):
        raise InvalidEvent("event has no 'records' object: not an MSK event source mapping event")
    for partition_key, records in records_by_partition.items():
        if not isinstance(records, list):
            raise InvalidEvent(f"records[{partition_key!r}] is not a list")
        for record in records:
            if not isinstance(record, Mapping):
                raise InvalidEvent(f"a record of {partition_key!r} is not an object")
            yield record


def record_coordinates(record: Mapping[str, Any]) -> Coordinates:
    topic, partition, offset = record.get("topic"), record.get("partition"), record.get("offset")
    if not isinstance(topic, str) or not topic:
        raise InvalidEvent(f"record without a topic: {topic!r}")
    if not _is_non_negative_integer(partition) or not _is_non_negative_integer(offset):
        raise InvalidEvent(f"record of {topic!r} without an integer partition/offset: {partition!r}/{offset!r}")
    return Coordinates(topic, partition, offset)


def _base64_value(record: Mapping[str, Any]) -> bytes:
    value = record.get("value")
    if value is None:
        raise InvalidReadingMessage("value", "missing (a null record value carries no reading)")
    if not isinstance(value, str):
        raise InvalidReadingMessage("value", f"expected a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as error:
        raise InvalidReadingMessage("value", f"not base64 ({error})") from None


def _kafka_timestamp_ms(record: Mapping[str, Any]) -> int | None:
    timestamp = record.get("timestamp")
    return timestamp if _is_non_negative_integer(timestamp) else None


def _raw_text(candidate: object) -> str | None:
    """The record's key/value as the event carried it (base64 text), for the dead letter."""
    if candidate is None:
        return None
    return candidate if isinstance(candidate, str) else repr(candidate)


def _is_non_negative_integer(candidate: object) -> bool:
    return isinstance(candidate, int) and not isinstance(candidate, bool) and candidate >= 0
