"""Data stack: everything stateful. Termination protection in production; nothing here is
deleted with the stack (RETAIN / SNAPSHOT)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from cdk.components.database import SensorDatabase
from cdk.components.datalake import DataLake
from cdk.components.security_groups import PlatformSecurityGroups
from cdk.components.state_store import SharedStateStore
from cdk.components.streaming import SensorStream
from cdk.config import EnvironmentConfig


class DataStack(Stack):
    """Owns the PostgreSQL database, the MSK cluster and topic, the shared state store (ElastiCache
    Serverless for Valkey) and the S3 buckets."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        security_groups: PlatformSecurityGroups,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope, construct_id, termination_protection=config.production, **kwargs
        )
        self.database = SensorDatabase(
            self,
            "Database",
            config=config.database,
            env_name=config.name,
            production=config.production,
            vpc=vpc,
            client_security_group=security_groups.app,
            log_retention_days=config.log_retention_days,
        )
        self.stream = SensorStream(
            self,
            "Streaming",
            config=config.streaming,
            env_name=config.name,
            vpc=vpc,
            client_security_group=security_groups.app,
            availability_zone_count=len(config.network.availability_zones),
            log_retention_days=config.log_retention_days,
        )
        self.state_store = SharedStateStore(
            self,
            "StateStore",
            config=config.state_store,
            env_name=config.name,
            vpc=vpc,
            client_security_group=security_groups.app,
        )
        self.lake = DataLake(
            self, "DataLake", config=config.datalake, env_name=config.name, region=config.region
        )

        CfnOutput(self, "DataLakeBucketName", value=self.lake.bucket.bucket_name)
        CfnOutput(self, "DatabaseEndpoint", value=self.database.instance.db_instance_endpoint_address)
        CfnOutput(self, "DatabaseSecretArn", value=self.database.secret.secret_arn)
        CfnOutput(self, "MskClusterArn", value=self.stream.cluster.cluster_arn)
        CfnOutput(self, "ReadingsTopic", value=self.stream.topic_name)
        CfnOutput(self, "StateStoreEndpoint", value=self.state_store.cache.attr_endpoint_address)
