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
from cdk.components.datalake import DEAD_LETTER_PREFIX, PROCESSED_PREFIX, RAW_PREFIX
from cdk.components.lake_catalog import LakeCatalog
from cdk.components.lambda_deployment import LambdaApplication, LambdaDeployment, hook_code
from cdk.components.read_api import RDS_CA_BUNDLE_IN_LAMBDA, ReadApi
from cdk.components.vpc_function import FunctionCode, VpcPythonFunction
from cdk.props import DatabaseAccess, LakeAccess, ServiceEdge, StreamAccess
from environments.config import EnvironmentConfig
from environments.naming import EnvironmentNames

# Python 3.11: the version the tests run on (CI's setup-python, the development venv, the images'
# python:3.11-slim), so the handlers run in AWS on the interpreter they were tested with
# (tests/infra/test_pipeline.py checks). Move all of them together. ARM64 (Graviton): about 20 % cheaper per GB-second than x86_64 at equal or better
# speed for this I/O-bound work, and all those wheels exist for manylinux aarch64 too.
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_11
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
# The archiver writes here and nowhere else in the bucket.
ARCHIVER_DEAD_LETTER_PREFIX = f"{DEAD_LETTER_PREFIX}archiver/"
# Local-only parts of the app package that the read API bundle leaves out.
READ_API_EXCLUDED_APP_PARTS = ("static", "pages", "Dockerfile", ".dockerignore")


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
        return self._bundle(
            "archiver",
            self.archiver_directory,
            *package_tree(self.contracts_package, target="contracts"),
        )

    def read_api_bundle(self) -> PythonBundle:
        """The handler plus the whole app package, with only the read path's requirements (lambda/api/requirements.txt)."""
        return self._bundle(
            "read-api",
            self.read_api_directory,
            *package_tree(self.app_package, target="app", exclude=READ_API_EXCLUDED_APP_PARTS),
            *package_tree(self.contracts_package, target="contracts"),
            # PostgreSQL verify-full needs the RDS CA bundle, fetched by `make rds-ca-bundle` where the
            # build has network (make deploy runs it; cdk.preflight refuses to deploy without it).
            *((SourceFile(RDS_CA_BUNDLE, RDS_CA_BUNDLE_IN_LAMBDA),) if RDS_CA_BUNDLE.is_file() else ()),
        )

    def _bundle(self, name: str, handler_directory: Path, *extra: SourceFile) -> PythonBundle:
        """`handler_directory`'s modules and requirements (pinned by the constraints) plus `extra` files."""
        return PythonBundle(
            name=name, runtime=LAMBDA_RUNTIME, architecture=LAMBDA_ARCHITECTURE,
            requirements=handler_directory / "requirements.txt", constraints=self.constraints,
            files=(*python_files(handler_directory), *extra),
        )


class PipelineStack(Stack):
    """Owns the archiver (Lambda, alias, MSK event source mapping, failure queue), the Glue database
    and table over the lake, and, when `pipeline.read_api_enabled`, the read-only API (Lambda, alias,
    its `/read` rule on the service's ALB). Each function's `live` alias moves to a new version through CodeDeploy
    (`pipeline.lambda_deployment`), with rollback alarms and a pre-traffic hook (lambda/pre_traffic)."""

    def __init__(
        self, scope: Construct, construct_id: str, *,
        config: EnvironmentConfig, sources: LambdaSources, vpc: ec2.IVpc,
        database: DatabaseAccess, stream: StreamAccess, lake: LakeAccess, edge: ServiceEdge, **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        names = EnvironmentNames(config.name)
        pipeline = config.pipeline

        self.archiver = Archiver(
            self,
            "Archiver",
            config=pipeline,
            names=names,
            region=config.region,
            code=_function_code(
                sources.archiver_bundle(), pipeline.archiver_memory_mb, pipeline.archiver_timeout_seconds
            ),
            vpc=vpc,
            stream=stream,
            lake=lake,
            lake_write_prefixes=(RAW_PREFIX, PROCESSED_PREFIX, ARCHIVER_DEAD_LETTER_PREFIX),
            log_retention_days=config.log_retention_days,
        )
        self.catalog = LakeCatalog(
            self,
            "LakeCatalog",
            names=names,
            lake_bucket_name=lake.bucket_name,
            raw_prefix=RAW_PREFIX,
        )

        self.read_api: ReadApi | None = None
        if pipeline.read_api_enabled:
            code = _function_code(
                sources.read_api_bundle(), pipeline.read_api_memory_mb, pipeline.read_api_timeout_seconds
            )
            # Behind the ingest path's edge: WAF web ACL, TLS listener with HSTS, access logs.
            self.read_api = ReadApi(
                self, "ReadApi", names=names, code=code, vpc=vpc, vpc_cidr=config.network.vpc_cidr, edge=edge,
                database=database, database_name=config.database.database_name,
                log_retention_days=config.log_retention_days,
            )
        self._deploy_blue_green(config, names, sources)

        CfnOutput(self, "ArchiverFunctionName", value=self.archiver.function.function_name)
        CfnOutput(self, "ArchiverAliasName", value=self.archiver.alias.function_name)
        CfnOutput(self, "ArchiverFailedBatchesQueueUrl", value=self.archiver.failure_queue.queue_url)
        CfnOutput(self, "GlueDatabaseName", value=self.catalog.database_name)
        CfnOutput(self, "GlueTableName", value=self.catalog.table_name)
        if self.read_api is not None:
            CfnOutput(self, "ReadApiUrl", value=self.read_api.url)
            CfnOutput(self, "ReadApiFunctionName", value=self.read_api.function.function_name)

    def _deploy_blue_green(self, config: EnvironmentConfig, names: EnvironmentNames, sources: LambdaSources) -> None:
        """One CodeDeploy deployment group per function (archiver, read API), sharing one application."""
        pipeline = config.pipeline
        self.lambda_application = LambdaApplication(
            self, "LambdaDeployments", application_name=names.lambda_application
        )
        pre_traffic_code = hook_code(sources.archiver_directory.parent / "pre_traffic")
        targets: list[tuple[str, VpcPythonFunction, int, int, str]] = [
            ("ArchiverDeployment", self.archiver, pipeline.archiver_p99_duration_alarm_ms,
             pipeline.archiver_timeout_seconds, "archiver"),
        ]
        if self.read_api is not None:
            targets.append(("ReadApiDeployment", self.read_api, pipeline.read_api_p99_duration_alarm_ms,
                            pipeline.read_api_timeout_seconds, "read-api"))
        self.deployments = [
            LambdaDeployment(
                self,
                construct_id,
                name=target.function_name,
                function=target.function,
                alias=target.alias,
                application=self.lambda_application,
                config_name=pipeline.lambda_deployment,
                p99_duration_alarm_ms=p99_ms,
                target_timeout=Duration.seconds(timeout_seconds),
                probe=probe,
                code=pre_traffic_code,
                runtime=LAMBDA_RUNTIME,
                architecture=LAMBDA_ARCHITECTURE,
                log_retention_days=config.log_retention_days,
            )
            for construct_id, target, p99_ms, timeout_seconds, probe in targets
        ]


def _function_code(bundle: PythonBundle, memory_mb: int, timeout_seconds: int) -> FunctionCode:
    """A bundled function on the pipeline's runtime and architecture."""
    return FunctionCode(
        code=python_lambda_code(bundle),
        runtime=LAMBDA_RUNTIME,
        architecture=LAMBDA_ARCHITECTURE,
        memory_size=memory_mb,
        timeout=Duration.seconds(timeout_seconds),
    )
