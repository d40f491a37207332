"""The Kafka wire format of a reading: the one module the relay (producer side) and the archiver
Lambda (consumer side) share.

A record's key is the device id (UTF-8), so one device's readings land in one partition, in order.
Its value is UTF-8 JSON:

    {"schema_version": 1, "id": 42, "device_id": "dev-1", "tag": "temperature",
     "timestamp": "2024-05-01T12:00:00.000000Z", "value": 21.5, "is_anomaly": false, "z_score": 0.3}

`timestamp` is always UTC, always written with microseconds and a trailing "Z" (so it sorts as a
string). `decode_reading` also accepts any explicit offset ("+00:00", "+02:00") and converts it to
UTC, but rejects a timestamp without one. `id` is the reading's primary key: consumers deduplicate
on it, because the relay delivers at least once (see app.outbox.relay).

Within schema version 1 changes are additive only: decoders ignore fields they do not know.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

SCHEMA_VERSION = 1
# Built once: `json.dumps` with any non-default option constructs a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class ReadingMessage(TypedDict):
    """A decoded record value; `timestamp` is a timezone-aware UTC datetime."""

    schema_version: int
    id: int
    device_id: str
    tag: str
    timestamp: datetime
    value: float
    is_anomaly: bool
    z_score: float | None
    # Seed 004's device metadata (additive in schema 1: absent for plain readings).
    device_type: NotRequired[str]
    latitude: NotRequired[float]
    longitude: NotRequired[float]
    status: NotRequired[str]
    firmware_version: NotRequired[str]


# The optional device-metadata fields and their JSON types.
METADATA_FIELDS = {"device_type": str, "latitude": float, "longitude": float, "status": str,
                   "firmware_version": str}


class InvalidReadingMessage(ValueError):
    """A record value that does not follow the wire format; `field` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for UTC values; PostgreSQL returns aware ones in any zone."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    return as_utc(moment).isoformat(timespec="microseconds").replace("+00:00", "Z")


def reading_payload(*, reading_id: int, device_id: str, tag: str, ts: datetime, value: float, is_anomaly: bool,
                    z_score: float | None, metadata: Iterable[tuple[str, Any]] = ()) -> dict[str, Any]:
    """A record value's fields, from a reading's columns; `metadata` holds (name, value) pairs of
    METADATA_FIELDS, and the absent (None) ones are left out. Serialize it with any JSON encoder that
    writes finite floats as JSON numbers (the relay uses pydantic-core's, `encode_reading` the
    standard library's: this module stays free of third-party imports for the archiver's bundle).

    Raises InvalidReadingMessage for a reading the format cannot carry (a NaN or infinite number).
    """
    payload = {
        "schema_version": SCHEMA_VERSION,
        "id": int(reading_id),
        "device_id": device_id,
        "tag": tag,
        "timestamp": format_timestamp(ts),
        "value": _finite("value", float(value)),
        "is_anomaly": bool(is_anomaly),
        "z_score": None if z_score is None else _finite("z_score", float(z_score)),
    }
    for name, field_value in metadata:
        if field_value is not None:
            payload[name] = field_value
    return payload


def encode_reading(row: Mapping[str, Any] | Any) -> tuple[bytes, bytes]:
    """(key, value) for a `readings` row (a SQLAlchemy Row or a mapping with the column names).

    Raises InvalidReadingMessage for a row the format cannot carry (a NaN or infinite number).
    """
    fields: Mapping[str, Any] = getattr(row, "_mapping", row)
    payload = reading_payload(reading_id=fields["id"], device_id=fields["device_id"], tag=fields["tag"],
                              ts=fields["ts"], value=fields["value"], is_anomaly=fields["is_anomaly"],
                              z_score=fields["z_score"],
                              metadata=((name, fields.get(name)) for name in METADATA_FIELDS))
    return fields["device_id"].encode(), _ENCODER.encode(payload).encode()


def decode_reading(value: bytes) -> ReadingMessage:
    """Parse and validate a record value; raises InvalidReadingMessage (a ValueError) naming the field."""
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidReadingMessage("payload", f"not UTF-8 JSON ({error})") from None
    if not isinstance(document, dict):
        raise InvalidReadingMessage("payload", f"expected a JSON object, got {type(document).__name__}")

    version = _required(document, "schema_version")
    if not _is_integer(version) or version != SCHEMA_VERSION:
        raise InvalidReadingMessage("schema_version", f"unsupported {version!r} (expected {SCHEMA_VERSION})")

    reading_id = _required(document, "id")
    if not _is_integer(reading_id) or reading_id < 1:
        raise InvalidReadingMessage("id", f"expected a positive integer, got {reading_id!r}")

    is_anomaly = _required(document, "is_anomaly")
    if not isinstance(is_anomaly, bool):
        raise InvalidReadingMessage("is_anomaly", f"expected true or false, got {is_anomaly!r}")

    z_score = _required(document, "z_score")
    return ReadingMessage(
        schema_version=version,
        id=reading_id,
        device_id=_text(document, "device_id"),
        tag=_text(document, "tag"),
        timestamp=_timestamp(document),
        value=_number(document, "value"),
        is_anomaly=is_anomaly,
        z_score=None if z_score is None else _number(document, "z_score"),
        **{name: _optional(document, name, kind) for name, kind in METADATA_FIELDS.items()
           if document.get(name) is not None},
    )


def _optional(document: dict[str, Any], field: str, kind: type) -> Any:
    value = document.get(field)
    if value is None:
        return None
    if kind is float:
        return _number(document, field)
    if isinstance(value, str):
        return value
    raise InvalidReadingMessage(field, f"expected {'a number' if kind is float else 'a string'} or null, got {value!r}")


def _required(document: dict[str, Any], field: str) -> Any:
    if field not in document:
        raise InvalidReadingMessage(field, "missing")
    return document[field]


def _is_integer(candidate: object) -> bool:
    # bool is an int subclass; `true` is not a version or an id.
    return isinstance(candidate, int) and not isinstance(candidate, bool)


def _text(document: dict[str, Any], field: str) -> str:
    text = _required(document, field)
    if not isinstance(text, str) or not text:
        raise InvalidReadingMessage(field, f"expected a non-empty string, got {text!r}")
    return text


def _number(document: dict[str, Any], field: str) -> float:
    number = _required(document, field)
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise InvalidReadingMessage(field, f"expected a number, got {number!r}")
    return _finite(field, float(number))


def _finite(field: str, number: float) -> float:
    # json.loads accepts NaN and Infinity literals; they are not valid readings.
    if not math.isfinite(number):
        raise InvalidReadingMessage(field, f"expected a finite number, got {number!r}")
    return number


def _timestamp(document: dict[str, Any]) -> datetime:
    text = _required(document, "timestamp")
    if not isinstance(text, str):
        raise InvalidReadingMessage("timestamp", f"expected an ISO-8601 string, got {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidReadingMessage("timestamp", f"not ISO-8601: {text!r}") from None
    if moment.tzinfo is None:
        raise InvalidReadingMessage("timestamp", f"no UTC offset in {text!r}")
    return moment.astimezone(UTC)
