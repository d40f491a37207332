"""The app's task definition (container, environment, injected secrets, logs) and its task role's
permissions: the database secret, the dead-letter prefix of the lake, producing to the readings topic.

The environment is what app/settings.py reads in a deployed task.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk.components.fargate import linux_task_definition
from cdk.components.ingest.secrets import TokenSecrets
from cdk.components.nag import acknowledge, finding_text
from cdk.components.retention import log_retention
from cdk.props import DatabaseAccess, LakeAccess, StreamAccess
from environments.config import ServiceConfig

CONTAINER_NAME = "app"
RDS_CA_BUNDLE_IN_IMAGE = "/etc/ssl/rds/global-bundle.pem"


def app_task_definition(
    scope: Construct, *, config: ServiceConfig, image_directory: Path, app_env: str, secrets: TokenSecrets,
    database: DatabaseAccess, database_name: str, lake: LakeAccess, dead_letter_prefix: str, stream: StreamAccess,
    log_retention_days: int,
) -> ecs.FargateTaskDefinition:
    """`TaskDefinition` with the `app` container (read-only root file system, logs to `AppLogs`)."""
    task_definition = linux_task_definition(scope, "TaskDefinition", cpu=config.cpu, memory_mib=config.memory_mib)
    log_group = logs.LogGroup(
        scope,
        "AppLogs",
        retention=log_retention(log_retention_days),
        removal_policy=RemovalPolicy.DESTROY,
    )
    database_secret = database.secret
    task_definition.add_container(
        CONTAINER_NAME,
        image=ecs.ContainerImage.from_asset(str(image_directory), file="app/Dockerfile"),
        port_mappings=[ecs.PortMapping(container_port=config.container_port)],
        logging=ecs.LogDrivers.aws_logs(stream_prefix="app", log_group=log_group),
        readonly_root_filesystem=True,
        stop_timeout=Duration.seconds(30),
        environment={
            "APP_ENV": app_env,
            "PORT": str(config.container_port),
            # uvicorn workers follow the task size: one per vCPU, at least one.
            "WEB_CONCURRENCY": str(max(1, config.cpu // 1024)),
            "DB_NAME": database_name,
            "DATA_LAKE_BUCKET": lake.bucket_name,
            "DEAD_LETTER_PREFIX": dead_letter_prefix,
            "MSK_CLUSTER_ARN": stream.cluster_arn,
            "KAFKA_TOPIC": stream.topic_name,
            "DB_SECRET_ARN": database_secret.secret_arn,
            # TLS to RDS verified against the RDS CA bundle the image fetches at build (app/Dockerfile).
            "SENSOR_DB_SSLMODE": "verify-full",
            "SENSOR_DB_SSL_ROOT_CERT": RDS_CA_BUNDLE_IN_IMAGE,
        },
        secrets={
            "DB_HOST": ecs.Secret.from_secrets_manager(database_secret, "host"),
            "DB_PORT": ecs.Secret.from_secrets_manager(database_secret, "port"),
            "DB_USERNAME": ecs.Secret.from_secrets_manager(database_secret, "username"),
            "DB_PASSWORD": ecs.Secret.from_secrets_manager(database_secret, "password"),
            "JWT_SIGNING_KEY": ecs.Secret.from_secrets_manager(secrets.jwt_signing_key),
            "SENSOR_CLIENTS": ecs.Secret.from_secrets_manager(secrets.api_clients),
        },
    )
    acknowledge(
        task_definition,
        "ECS2",
        "The environment holds only non-secret settings (names, ARNs, sizes); credentials and "
        "the signing key are injected as Secrets Manager secrets.",
    )
    return task_definition


def grant_task_permissions(
    scope: Construct, role: iam.IRole, *, database: DatabaseAccess, lake_bucket_name: str, dead_letter_prefix: str,
    stream: StreamAccess,
) -> None:
    """The task role: re-read the database secret, the dead-letter store, produce readings."""
    lake_arn = f"arn:{Aws.PARTITION}:s3:::{lake_bucket_name}"
    dead_letter_objects = f"{lake_arn}/{dead_letter_prefix}*"
    # Re-read after rotation: injected secrets are fixed at task start.
    database.secret.grant_read(role)
    # Dead-letter store: written while the database is down, replayed and removed later.
    # A policy of its own, so its one acknowledged wildcard cannot cover anything else.
    dead_letter_policy = iam.Policy(
        scope,
        "DeadLetterPolicy",
        statements=[
            iam.PolicyStatement(
                sid="DeadLetterObjects",
                actions=["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
                resources=[dead_letter_objects],
            ),
            iam.PolicyStatement(
                sid="DeadLetterListing",
                actions=["s3:ListBucket"],
                resources=[lake_arn],
                conditions={"StringLike": {"s3:prefix": [f"{dead_letter_prefix}*"]}},
            ),
        ],
    )
    dead_letter_policy.attach_to_role(role)
    acknowledge(
        dead_letter_policy,
        f"IAM5[Resource::{finding_text(scope, dead_letter_objects)}]",
        f"Object keys under the '{dead_letter_prefix}' prefix are generated per batch; the "
        "wildcard is limited to that prefix of the data-lake bucket.",
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="KafkaConnect",
            actions=[
                "kafka-cluster:Connect",
                "kafka-cluster:WriteDataIdempotently",
                "kafka:GetBootstrapBrokers",
            ],
            resources=[stream.cluster_arn],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="KafkaProduceReadings",
            actions=["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"],
            resources=[stream.topic_arn],
        )
    )
