"""The data lake's Glue catalog: what Athena needs to query `raw/` without a crawler."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_glue as glue
from constructs import Construct

# Partition projection enumerates every partition in range when a query does not filter on the
# partition keys, so the range is kept to the years readings can carry: the app accepts readings up to
# ten years old (max_reading_age_days), and the range reaches well past this platform's lifetime.
PROJECTED_YEARS = (2016, 2050)
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"

# The archiver's Parquet schema (lambda/archiver/lake_layout.py PARQUET_SCHEMA), in Glue types.
READING_COLUMNS = (
    ("id", "bigint", "Reading id (primary key in PostgreSQL); unique, use it to deduplicate"),
    ("device_id", "string", "Device that sent the reading"),
    ("tag", "string", "Sensor tag, e.g. temperature"),
    ("timestamp", "timestamp", "Reading time, UTC"),
    ("value", "double", "Measured value"),
    ("is_anomaly", "boolean", "Rolling z-score anomaly flag at ingestion"),
    ("z_score", "double", "Rolling z-score at ingestion (null while the window fills)"),
    ("device_type", "string", "Seed-004 device record: device type (null for plain readings)"),
    ("latitude", "double", "Seed-004 device record: latitude, degrees"),
    ("longitude", "double", "Seed-004 device record: longitude, degrees"),
    ("status", "string", "Seed-004 device record: device status"),
    ("firmware_version", "string", "Seed-004 device record: firmware version"),
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


def glue_database_name(env_name: str) -> str:
    """Glue/Athena database names take lower-case letters, digits and underscores."""
    return f"sensor_{env_name.replace('-', '_')}_lake"


class LakeCatalog(Construct):
    """Owns the Glue database of the data lake and its `readings_raw` table over `raw/` (Parquet,
    partitioned by year/month/day/hour).

    The table uses partition projection: Athena computes partition locations from the key layout
    (`storage.location.template`), so no crawler runs and no partition is ever registered; a new hour
    is queryable as soon as the archiver writes its first object.
    """

    TABLE_NAME = "readings_raw"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        lake_bucket_name: str,
        raw_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.database_name = glue_database_name(env_name)
        self.table_name = self.TABLE_NAME
        location = f"s3://{lake_bucket_name}/{raw_prefix}"

        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description=f"Sensor platform ({env_name}) data lake, s3://{lake_bucket_name}/",
            ),
        )

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

        self.table = glue.CfnTable(
            self,
            "ReadingsRaw",
            catalog_id=Aws.ACCOUNT_ID,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=self.table_name,
                description="Archived readings, one Parquet object per topic-partition, hour and batch",
                table_type="EXTERNAL_TABLE",
                parameters=parameters,
                partition_keys=[
                    glue.CfnTable.ColumnProperty(name=name, type="int") for name, _, _ in PARTITION_KEYS
                ],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location,
                    input_format=PARQUET_INPUT_FORMAT,
                    output_format=PARQUET_OUTPUT_FORMAT,
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=PARQUET_SERDE,
                        parameters={"serialization.format": "1"},
                    ),
                    columns=[
                        glue.CfnTable.ColumnProperty(name=name, type=column_type, comment=comment)
                        for name, column_type, comment in READING_COLUMNS
                    ],
                ),
            ),
        )
        self.table.node.add_dependency(self.database)
