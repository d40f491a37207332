"""Data stack: everything stateful. Termination protection in production; nothing here is
deleted with the stack (RETAIN / SNAPSHOT)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from cdk.components.database import POSTGRES_PORT, SensorDatabase
from cdk.components.datalake import DataLake
from cdk.components.state_store import SharedStateStore
from cdk.components.streaming import MSK_IAM_TLS_PORT, SensorStream
from cdk.props import DatabaseAccess, LakeAccess, StreamAccess
from environments.config import EnvironmentConfig
from environments.naming import EnvironmentNames


class DataStack(Stack):
    """Owns the PostgreSQL database, the MSK cluster and topic, the shared state store (ElastiCache
    Serverless for Valkey) and the S3 buckets; hands the other stacks `database_access`,
    `stream_access`, `lake_access` and `state_store.access`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        app_security_group: ec2.ISecurityGroup,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope, construct_id, termination_protection=config.production, **kwargs
        )
        names = EnvironmentNames(config.name)
        # Each store admits the app tasks' security group, and only it.
        clients = {"names": names, "vpc": vpc, "client_security_group": app_security_group}
        self.database = SensorDatabase(
            self, "Database", config=config.database, production=config.production,
            log_retention_days=config.log_retention_days, **clients,
        )
        self.stream = SensorStream(
            self, "Streaming", config=config.streaming, log_retention_days=config.log_retention_days,
            availability_zone_count=len(config.network.availability_zones), **clients,
        )
        self.state_store = SharedStateStore(self, "StateStore", config=config.state_store, **clients)
        self.lake = DataLake(self, "DataLake", config=config.datalake, names=names, region=config.region)
        self.database_access = DatabaseAccess(
            secret=self.database.secret, security_group=self.database.security_group, port=POSTGRES_PORT
        )
        self.stream_access = StreamAccess(
            cluster_arn=self.stream.cluster.cluster_arn,
            topic_arn=self.stream.topic.attr_topic_arn,
            topic_name=self.stream.topic_name,
            security_group=self.stream.security_group,
            port=MSK_IAM_TLS_PORT,
        )
        self.lake_access = LakeAccess(bucket_name=self.lake.bucket_name, access_logs=self.lake.access_logs)

        CfnOutput(self, "DataLakeBucketName", value=self.lake.bucket.bucket_name)
        CfnOutput(self, "DatabaseEndpoint", value=self.database.instance.db_instance_endpoint_address)
        CfnOutput(self, "DatabaseSecretArn", value=self.database.secret.secret_arn)
        CfnOutput(self, "MskClusterArn", value=self.stream.cluster.cluster_arn)
        CfnOutput(self, "ReadingsTopic", value=self.stream.topic_name)
        CfnOutput(self, "StateStoreEndpoint", value=self.state_store.cache.attr_endpoint_address)
