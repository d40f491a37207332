"""The data lake table's layout as plain data (no CDK import): columns, partition keys and the partition
projection parameters. Shared by the Glue construct (lake_catalog.py) and the local environment that
`make verify` checks (devstack/aws_environment.py), so both describe the same table. The
database's name is `EnvironmentNames.glue_database` (environments/naming.py).
"""

from __future__ import annotations

# Partition projection enumerates every partition in range when a query does not filter on the
# partition keys, so the range is kept to the years readings can carry: the app accepts readings up to
# ten years old (max_reading_age_days), and the range reaches well past this platform's lifetime.
PROJECTED_YEARS = (2016, 2050)
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
TABLE_NAME = "readings_raw"

# The archiver's Parquet schema (lambda/archiver/lake_layout.py PARQUET_SCHEMA), in Glue types.
READING_COLUMNS = (
    ("id", "bigint", "Reading id (primary key in PostgreSQL); unique, use it to deduplicate"),
    ("device_id", "string", "Device that sent the reading"),
    ("tag", "string", "Sensor tag, e.g. temperature"),
    ("timestamp", "timestamp", "Reading time, UTC"),
    ("value", "double", "Measured value"),
    ("is_anomaly", "boolean", "Rolling z-score anomaly flag at ingestion"),
    ("z_score", "double", "Rolling z-score at ingestion (null while the window fills)"),
    ("device_type", "string", "Device record: device type (null for plain readings)"),
    ("latitude", "double", "Device record: latitude, degrees"),
    ("longitude", "double", "Device record: longitude, degrees"),
    ("status", "string", "Device record: device status"),
    ("firmware_version", "string", "Device record: firmware version"),
    ("kafka_topic", "string", "Topic the reading was archived from"),
    ("kafka_partition", "int", "Topic partition"),
    ("kafka_offset", "bigint", "Offset within the partition"),
)
# name, projected range, digits (the archiver writes zero-padded month/day/hour: month=05).
PARTITION_KEYS = (
    ("year", PROJECTED_YEARS, 4),
    ("month", (1, 12), 2),
    ("day", (1, 31), 2),
    ("hour", (0, 23), 2),
)


def table_parameters(location: str) -> dict[str, str]:
    """The table's parameters for data under `location` (`s3://bucket/raw/`): Parquet, partition projection
    over PARTITION_KEYS, and the storage template Athena fills in."""
    template = location + "/".join(f"{name}=${{{name}}}" for name, _, _ in PARTITION_KEYS) + "/"
    parameters = {
        "classification": "parquet",
        "EXTERNAL": "TRUE",
        "projection.enabled": "true",
        "storage.location.template": template,
    }
    for name, (low, high), digits in PARTITION_KEYS:
        parameters[f"projection.{name}.type"] = "integer"
        parameters[f"projection.{name}.range"] = f"{low},{high}"
        parameters[f"projection.{name}.digits"] = str(digits)
    return parameters
