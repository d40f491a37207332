"""Request shapes and validation: raw JSON in, validated `NewReading`s out, or errors naming
the field (and the index, inside a batch).

Accepted shapes (the seeds' clients, unchanged):
- a reading `{"timestamp", "tag", "value", "device_id"?}` (extra fields allowed and ignored);
- a seed-004 device record `{"device_id", "timestamp", "temperature"?, "humidity"?,
  "battery_level"?, "energy_consumption"?, ...}`: one reading per metric present;
- a batch: a list of those, or `{"readings": [...]}`.

Timestamps without a timezone are UTC; every stored timestamp is timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic_core import from_json

DEFAULT_DEVICE_ID = "default"
DEVICE_METRICS = ("temperature", "humidity", "battery_level", "energy_consumption")
DEVICE_ID_PATTERN = r"^[A-Za-z0-9_.:@/-]{1,128}$"
# Stored text (seed-004 metadata): no control characters (PostgreSQL text cannot hold NUL).
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
# Native (Rust) constraints: they run inside pydantic's single pass over a whole batch.
Finite = Field(allow_inf_nan=False)
# The timestamp validators are plain functions, so their JSON schema is stated here (else it says "any").
TIMESTAMP_SCHEMA = {"type": "string", "format": "date-time",
                    "description": "ISO-8601; UTC when it has no offset", "examples": ["2025-11-23T10:30:45"]}


@dataclass(frozen=True, slots=True)
class DeviceMetadata:
    """What a seed-004 device record says about its device, beside the metrics."""

    device_type: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    status: str | None = None
    firmware_version: str | None = None


DEVICE_METADATA = ("device_type", "latitude", "longitude", "status", "firmware_version")


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__ (5x the cost),
# paid for every reading on the ingest path. Nothing mutates these records.
@dataclass(slots=True)
class NewReading:
    """A validated reading, before anomaly detection."""

    device_id: str
    tag: str
    ts: datetime
    value: float
    # Seed 004's device record fields beside the metrics (stored and archived with each reading).
    metadata: DeviceMetadata | None = None

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.device_id, self.tag, self.ts)


class InvalidInput(Exception):
    """The body is not acceptable; `details` lists every problem with its location."""

    def __init__(self, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


def parse_timestamp(value: object) -> datetime:
    """An ISO-8601 string as an aware UTC datetime (no offset means UTC); numbers are refused."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 string, e.g. 2025-11-23T10:30:45 (UTC when no offset)")
    try:
        if "\x00" in value:  # CPython's parser stops at a NUL after the time and ignores the rest
            raise ValueError(value)
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        raise ValueError(f"not an ISO-8601 timestamp: {value[:40]!r}") from None
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is in year 10000 in UTC
        raise ValueError(f"outside the years 1-9999 once converted to UTC: {value[:40]!r}") from None


class ReadingIn(BaseModel):
    """One sensor reading: when, which tag, its value, and optionally which device."""

    model_config = ConfigDict(extra="allow", strict=True)

    timestamp: datetime = Field(json_schema_extra=TIMESTAMP_SCHEMA)
    tag: str = Field(min_length=1, max_length=64)
    value: float = Finite
    device_id: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN)

    @field_validator("timestamp", mode="plain")
    @classmethod
    def _timestamp(cls, value: object) -> datetime:
        return parse_timestamp(value)


class DeviceRecordIn(BaseModel):
    """Seed 004's wide device record; each metric present becomes one reading."""

    model_config = ConfigDict(extra="allow", strict=True)

    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    timestamp: datetime = Field(json_schema_extra=TIMESTAMP_SCHEMA)
    device_type: str | None = Field(default=None, max_length=64, pattern=PRINTABLE)
    temperature: float | None = Field(default=None, allow_inf_nan=False)
    humidity: float | None = Field(default=None, allow_inf_nan=False)
    battery_level: float | None = Field(default=None, allow_inf_nan=False)
    energy_consumption: float | None = Field(default=None, allow_inf_nan=False)
    latitude: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    longitude: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    status: str | None = Field(default=None, max_length=32, pattern=PRINTABLE)
    firmware_version: str | None = Field(default=None, max_length=32, pattern=PRINTABLE)

    @field_validator("timestamp", mode="plain")
    @classmethod
    def _timestamp(cls, value: object) -> datetime:
        return parse_timestamp(value)


@dataclass(frozen=True)
class ReadingRules:
    """Per-tag ranges and time bounds a reading must satisfy."""

    tag_ranges: dict[str, tuple[float | None, float | None]]
    max_clock_skew: timedelta
    max_age: timedelta
    max_batch: int

    def check(self, reading: NewReading, now: datetime) -> list[tuple[str, str]]:
        """(field, message) for every rule the reading breaks."""
        problems = []
        bounds = self.tag_ranges.get(reading.tag)
        if bounds is None:
            known = ", ".join(sorted(self.tag_ranges))
            problems.append(("tag", f"unknown tag {reading.tag!r}; known tags: {known}"))
        else:
            low, high = bounds
            if (low is not None and reading.value < low) or (high is not None and reading.value > high):
                problems.append(("value", f"{reading.value} is outside {_range_text(low, high)} for tag {reading.tag!r}"))
        if reading.ts > now + self.max_clock_skew:
            problems.append(("timestamp", f"is more than {self.max_clock_skew} in the future"))
        elif reading.ts < now - self.max_age:
            problems.append(("timestamp", f"is older than {self.max_age.days} days"))
        return problems


def _range_text(low: float | None, high: float | None) -> str:
    if low is None:
        return f"the range (-inf, {high}]"
    if high is None:
        return f"the range [{low}, +inf)"
    return f"the range [{low}, {high}]"


def parse_body(raw: bytes) -> Any:
    """JSON with NaN/Infinity literals refused (they are not JSON)."""
    try:
        return from_json(raw, allow_inf_nan=False)
    except ValueError as error:
        raise InvalidInput("body is not valid JSON", [{"loc": [], "msg": str(error)}]) from None


def validate_single(payload: Any, rules: ReadingRules, now: datetime) -> list[NewReading]:
    """A single reading or device record (POST /ingest)."""
    readings, details = _validate_item(payload, rules, now, prefix=[])
    if details:
        raise InvalidInput(_summary(details), details)
    return readings


_READING_LIST = TypeAdapter(list[ReadingIn])


def validate_batch_body(raw: bytes, rules: ReadingRules, now: datetime) -> list[NewReading]:
    """A batch body. Fast path: a plain list of seed-002 readings, parsed and validated in one
    pass; anything else (wrapped, device records, errors) takes the item-by-item path, which
    reports every problem with its index."""
    if raw.lstrip()[:1] == b"[":
        try:
            items = _READING_LIST.validate_json(raw)
        except ValueError:
            items = None
        if items and len(items) <= rules.max_batch:
            readings = [NewReading(i.device_id or DEFAULT_DEVICE_ID, i.tag, i.timestamp, i.value) for i in items]
            if not any(rules.check(reading, now) for reading in readings):
                return readings
    return validate_batch(parse_body(raw), rules, now)


def validate_single_body(raw: bytes, rules: ReadingRules, now: datetime) -> list[NewReading]:
    return validate_single(parse_body(raw), rules, now)


def validate_batch(payload: Any, rules: ReadingRules, now: datetime) -> list[NewReading]:
    """A list (or {"readings": [...]}); any invalid item rejects the whole batch."""
    if isinstance(payload, dict) and set(payload) == {"readings"}:
        payload, prefix = payload["readings"], ["readings"]
    else:
        prefix = []
    if not isinstance(payload, list):
        raise InvalidInput("a batch is a JSON list of readings or {\"readings\": [...]}", [
            {"loc": prefix, "msg": "must be a list"}])
    if not payload:
        raise InvalidInput("a batch needs at least one reading", [{"loc": prefix, "msg": "empty list"}])
    if len(payload) > rules.max_batch:
        raise InvalidInput(
            f"a batch holds at most {rules.max_batch} readings",
            [{"loc": prefix, "msg": f"{len(payload)} items; the limit is {rules.max_batch}"}],
        )
    readings: list[NewReading] = []
    details: list[dict[str, Any]] = []
    for index, item in enumerate(payload):
        item_readings, item_details = _validate_item(item, rules, now, prefix=[*prefix, index])
        readings += item_readings
        details += item_details
    if details:
        raise InvalidInput(_summary(details), details)
    return readings


def _validate_item(
    item: Any, rules: ReadingRules, now: datetime, prefix: list[str | int]
) -> tuple[list[NewReading], list[dict[str, Any]]]:
    if not isinstance(item, dict):
        return [], [{"loc": prefix, "msg": "must be an object"}]
    model = ReadingIn if "tag" in item or not any(k in item for k in (*DEVICE_METRICS, "device_type")) else DeviceRecordIn
    try:
        parsed = model.model_validate(item)
    except ValidationError as error:
        return [], [
            {"loc": [*prefix, *problem["loc"]], "msg": problem["msg"].removeprefix("Value error, ")}
            for problem in error.errors(include_url=False)
        ]
    readings = _expand(parsed)
    if not readings:
        return [], [{"loc": prefix, "msg": f"a device record needs at least one of {', '.join(DEVICE_METRICS)}"}]
    details = []
    for reading in readings:
        for field, message in rules.check(reading, now):
            location = reading.tag if isinstance(parsed, DeviceRecordIn) and field == "value" else field
            details.append({"loc": [*prefix, location], "msg": message})
    return readings, details


def _expand(parsed: ReadingIn | DeviceRecordIn) -> list[NewReading]:
    if isinstance(parsed, ReadingIn):
        return [NewReading(parsed.device_id or DEFAULT_DEVICE_ID, parsed.tag, parsed.timestamp, parsed.value)]
    metadata = DeviceMetadata(*(getattr(parsed, name) for name in DEVICE_METADATA))
    return [
        NewReading(parsed.device_id, metric, parsed.timestamp, value, metadata)
        for metric in DEVICE_METRICS
        if (value := getattr(parsed, metric)) is not None
    ]


def _summary(details: list[dict[str, Any]]) -> str:
    fields = ", ".join(".".join(str(part) for part in d["loc"]) or "body" for d in details[:5])
    more = f" and {len(details) - 5} more" if len(details) > 5 else ""
    return f"invalid reading: {fields}{more}"
