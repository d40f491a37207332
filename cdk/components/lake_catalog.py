"""The data lake's Glue catalog: what Athena needs to query `raw/` without a crawler."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_glue as glue
from constructs import Construct

from cdk.components.lake_schema import (
    PARQUET_INPUT_FORMAT,
    PARQUET_OUTPUT_FORMAT,
    PARQUET_SERDE,
    PARTITION_KEYS,
    PROJECTED_YEARS,  # noqa: F401 - re-exported: other modules name it here
    READING_COLUMNS,
    TABLE_NAME,
    table_parameters,
)
from environments.naming import EnvironmentNames


class LakeCatalog(Construct):
    """Owns the Glue database of the data lake and its `readings_raw` table over `raw/` (Parquet,
    partitioned by year/month/day/hour).

    The table uses partition projection: Athena computes partition locations from the key layout
    (`storage.location.template`), so no crawler runs and no partition is ever registered; a new hour
    is queryable as soon as the archiver writes its first object.
    """

    TABLE_NAME = TABLE_NAME

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: EnvironmentNames,
        lake_bucket_name: str,
        raw_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.database_name = names.glue_database
        self.table_name = self.TABLE_NAME
        location = f"s3://{lake_bucket_name}/{raw_prefix}"

        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description=f"Sensor platform ({names.env_name}) data lake, s3://{lake_bucket_name}/",
            ),
        )

        parameters = table_parameters(location)

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
