"""Pipeline stack: the MSK -> S3 archiver, the lake's Glue catalog and the optional read-only API.

Stateless: everything here can be deleted and redeployed; the data it reads and writes lives in the
data stack (topic, bucket, database).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk.artifacts import RDS_CA_BUNDLE
from cdk.components.archiver import Archiver
from cdk.components.bundling import PythonBundle, SourceFile, package_tree, python_files, python_lambda_code
from cdk.components.database import POSTGRES_PORT
from cdk.components.datalake import DEAD_LETTER_PREFIX, PROCESSED_PREFIX, RAW_PREFIX
from cdk.components.lake_catalog import LakeCatalog
from cdk.components.lambda_deployment import LambdaApplication, LambdaDeployment, hook_code
from cdk.components.read_api import RDS_CA_BUNDLE_IN_LAMBDA, ReadApi
from cdk.components.streaming import MSK_IAM_TLS_PORT
from cdk.config import EnvironmentConfig
from cdk.stacks.data import DataStack
from cdk.stacks.service import ServiceStack

# Python 3.11: the version the tests run on (CI's setup-python, the development venv, the images'
# python:3.11-slim), so the handlers run in AWS on the interpreter they were tested with
# (tests/infra/test_pipeline.py checks). Move all of them together. ARM64 (Graviton): about 20 % cheaper per GB-second than x86_64 at equal or better
# speed for this I/O-bound work, and all those wheels exist for manylinux aarch64 too.
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_11
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
# The archiver writes here and nowhere else in the bucket.
ARCHIVER_DEAD_LETTER_PREFIX = f"{DEAD_LETTER_PREFIX}archiver/"
# Local-only parts of the app package that the read API bundle leaves out.
READ_API_EXCLUDED_APP_PARTS = ("static", "Dockerfile", ".dockerignore")


@dataclass(frozen=True)
class LambdaSources:
    """Where the Lambda bundles come from, on the synthesizing machine."""

    archiver_directory: Path
    read_api_directory: Path
    app_package: Path
    contracts_package: Path
    constraints: Path

    def archiver_bundle(self) -> PythonBundle:
        """The handler modules plus the wire contracts they import (not the app package)."""
        return PythonBundle(
            name="archiver",
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            requirements=self.archiver_directory / "requirements.txt",
            constraints=self.constraints,
            files=(
                *python_files(self.archiver_directory),
                *package_tree(self.contracts_package, target="contracts"),
            ),
        )

    def read_api_bundle(self) -> PythonBundle:
        """The handler plus the whole app package, with only the read path's requirements (lambda/api/requirements.txt)."""
        return PythonBundle(
            name="read-api",
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            requirements=self.read_api_directory / "requirements.txt",
            constraints=self.constraints,
            files=(
                *python_files(self.read_api_directory),
                *package_tree(self.app_package, target="app", exclude=READ_API_EXCLUDED_APP_PARTS),
                *package_tree(self.contracts_package, target="contracts"),
                # PostgreSQL verify-full needs the RDS CA bundle, fetched by `make rds-ca-bundle` where the
                # build has network (make deploy runs it; cdk.preflight refuses to deploy without it).
                *((SourceFile(RDS_CA_BUNDLE, RDS_CA_BUNDLE_IN_LAMBDA),) if RDS_CA_BUNDLE.is_file() else ()),
            ),
        )




class PipelineStack(Stack):
    """Owns the archiver (Lambda, alias, MSK event source mapping, failure queue), the Glue database
    and table over the lake, and, when `pipeline.read_api_enabled`, the read-only API (Lambda, alias,
    its `/read` rule on the service's ALB). Each function's `live` alias moves to a new version through CodeDeploy
    (`pipeline.lambda_deployment`), with rollback alarms and a pre-traffic hook (lambda/pre_traffic)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        sources: LambdaSources,
        vpc: ec2.IVpc,
        data: DataStack,
        service: ServiceStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        name_prefix = f"sensor-{config.name}"
        pipeline = config.pipeline
        lake_bucket_name = data.lake.bucket_name

        self.archiver = Archiver(
            self,
            "Archiver",
            config=pipeline,
            name_prefix=name_prefix,
            region=config.region,
            code=python_lambda_code(sources.archiver_bundle()),
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            vpc=vpc,
            msk_security_group=data.stream.security_group,
            msk_port=MSK_IAM_TLS_PORT,
            msk_cluster_arn=data.stream.cluster.cluster_arn,
            # The streaming construct names the cluster `sensor-<env>` (README: fixed names); its
            # name attribute would be a cross-stack token, which an IAM finding id cannot spell.
            msk_cluster_name=name_prefix,
            topic_arn=data.stream.topic.attr_topic_arn,
            topic_name=data.stream.topic_name,
            lake_bucket_name=lake_bucket_name,
            lake_write_prefixes=(RAW_PREFIX, PROCESSED_PREFIX, ARCHIVER_DEAD_LETTER_PREFIX),
            log_retention_days=config.log_retention_days,
        )
        self.catalog = LakeCatalog(
            self,
            "LakeCatalog",
            env_name=config.name,
            lake_bucket_name=lake_bucket_name,
            raw_prefix=RAW_PREFIX,
        )

        self.read_api: ReadApi | None = None
        if pipeline.read_api_enabled:
            self.read_api = ReadApi(
                self,
                "ReadApi",
                config=pipeline,
                name_prefix=name_prefix,
                code=python_lambda_code(sources.read_api_bundle()),
                runtime=LAMBDA_RUNTIME,
                architecture=LAMBDA_ARCHITECTURE,
                vpc=vpc,
                vpc_cidr=config.network.vpc_cidr,
                database_security_group=data.database.security_group,
                database_port=POSTGRES_PORT,
                database_name=config.database.database_name,
                database_secret_arn=data.database.secret.secret_arn,
                jwt_signing_key_secret_arn=service.ingest.jwt_signing_key.secret_arn,
                api_clients_secret_arn=service.ingest.api_clients.secret_arn,
                # The ingest path's edge: WAF web ACL, TLS listener with HSTS, access logs.
                listener=service.ingest.production_listener,
                base_url=service.ingest.url,
                log_retention_days=config.log_retention_days,
            )

        self.lambda_application = LambdaApplication(
            self, "LambdaDeployments", application_name=f"{name_prefix}-lambdas"
        )
        pre_traffic_code = hook_code(sources.archiver_directory.parent / "pre_traffic")
        self.deployments = [
            LambdaDeployment(
                self,
                "ArchiverDeployment",
                name=self.archiver.function_name,
                function=self.archiver.function,
                alias=self.archiver.alias,
                application=self.lambda_application,
                config_name=pipeline.lambda_deployment,
                p99_duration_alarm_ms=pipeline.archiver_p99_duration_alarm_ms,
                target_timeout=Duration.seconds(pipeline.archiver_timeout_seconds),
                probe="archiver",
                code=pre_traffic_code,
                runtime=LAMBDA_RUNTIME,
                architecture=LAMBDA_ARCHITECTURE,
                log_retention_days=config.log_retention_days,
            )
        ]
        if self.read_api is not None:
            self.deployments.append(
                LambdaDeployment(
                    self,
                    "ReadApiDeployment",
                    name=self.read_api.function_name,
                    function=self.read_api.function,
                    alias=self.read_api.alias,
                    application=self.lambda_application,
                    config_name=pipeline.lambda_deployment,
                    p99_duration_alarm_ms=pipeline.read_api_p99_duration_alarm_ms,
                    target_timeout=Duration.seconds(pipeline.read_api_timeout_seconds),
                    probe="read-api",
                    code=pre_traffic_code,
                    runtime=LAMBDA_RUNTIME,
                    architecture=LAMBDA_ARCHITECTURE,
                    log_retention_days=config.log_retention_days,
                )
            )

        CfnOutput(self, "ArchiverFunctionName", value=self.archiver.function.function_name)
        CfnOutput(self, "ArchiverAliasName", value=self.archiver.alias.function_name)
        CfnOutput(self, "ArchiverFailedBatchesQueueUrl", value=self.archiver.failure_queue.queue_url)
        CfnOutput(self, "GlueDatabaseName", value=self.catalog.database_name)
        CfnOutput(self, "GlueTableName", value=self.catalog.table_name)
        if self.read_api is not None:
            CfnOutput(self, "ReadApiUrl", value=self.read_api.url)
            CfnOutput(self, "ReadApiFunctionName", value=self.read_api.function.function_name)
