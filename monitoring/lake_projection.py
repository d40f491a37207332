"""Glue partition projection, resolved the way Athena does it for one partition: which S3 prefix a
partition's values map to, computed from the table's own parameters (`projection.*` and
`storage.location.template`), so `make verify` proves the deployed table finds what the archiver wrote.

Only the `integer` projection type is supported: it is the one cdk/components/lake_catalog.py uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime


class ProjectionError(ValueError):
    """The table's projection cannot resolve the partition; the message says which parameter and why."""


def hour_partition_values(timestamp: datetime) -> dict[str, int]:
    """The lake's partition keys for a reading time (the archiver partitions by the reading's UTC hour)."""
    utc = timestamp.astimezone(UTC)
    return {"year": utc.year, "month": utc.month, "day": utc.day, "hour": utc.hour}


def partition_location(parameters: Mapping[str, str], partition_keys: Sequence[str],
                       values: Mapping[str, int]) -> str:
    """The S3 location (`s3://bucket/prefix/`) the projection gives the partition with these values."""
    if parameters.get("projection.enabled", "").lower() != "true":
        raise ProjectionError("table parameter projection.enabled is not 'true': Athena would need registered "
                              "partitions")
    template = parameters.get("storage.location.template")
    if not template:
        raise ProjectionError("table parameter storage.location.template is missing")
    location = template
    for key in partition_keys:
        if key not in values:
            raise ProjectionError(f"no value for partition key {key!r}")
        kind = parameters.get(f"projection.{key}.type")
        if kind != "integer":
            raise ProjectionError(f"projection.{key}.type is {kind!r}; only 'integer' is supported")
        low, high = _range(parameters, key)
        value = values[key]
        if not low <= value <= high:
            raise ProjectionError(f"{key}={value} is outside projection.{key}.range {low},{high}: Athena would "
                                  "not find this partition")
        digits = int(parameters.get(f"projection.{key}.digits", "1"))
        placeholder = f"${{{key}}}"
        if placeholder not in location:
            raise ProjectionError(f"storage.location.template has no {placeholder}")
        location = location.replace(placeholder, f"{value:0{digits}d}")
    if "${" in location:
        raise ProjectionError(f"storage.location.template keeps an unresolved placeholder: {location}")
    return location


def _range(parameters: Mapping[str, str], key: str) -> tuple[int, int]:
    raw = parameters.get(f"projection.{key}.range", "")
    try:
        low, high = (int(part) for part in raw.split(","))
    except ValueError:
        raise ProjectionError(f"projection.{key}.range must be 'low,high' integers, got {raw!r}") from None
    return low, high
