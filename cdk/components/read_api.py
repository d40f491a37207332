"""The read-only API: the app's query endpoints in a Lambda behind an API Gateway HTTP API."""

from __future__ import annotations

import json

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk.components.archiver import ALIAS_NAME, HTTPS_PORT
from cdk.components.checkov import acknowledge_checkov
from cdk.components.lambda_common import (
    acknowledge_network_interfaces,
    acknowledge_pinned_runtime,
    acknowledge_plain_environment,
    execution_role,
    function_log_group,
    log_write_statement,
    network_interface_statement,
)
from cdk.components.nag import acknowledge
from cdk.components.retention import log_retention
from cdk.config import PipelineConfig

# The app's read endpoints (app/read_api.py); anything else is answered 404 by API Gateway itself.
READ_ROUTES = (
    (apigwv2.HttpMethod.GET, "/health"),
    (apigwv2.HttpMethod.POST, "/auth/token"),
    (apigwv2.HttpMethod.GET, "/data"),
    (apigwv2.HttpMethod.GET, "/sensors/stats"),
    (apigwv2.HttpMethod.GET, "/sensors/anomalies/count"),
)
# HTTP API context variables (API Gateway developer guide: "Customizing HTTP API access logs").
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integrationStatus",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
}
# A Lambda execution environment serves one request at a time: one pooled connection is enough.
DATABASE_POOL_SIZE = 1


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """Access logs of the HTTP API stage: one JSON line per request into `log_group`."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigateway.AccessLogFormat:
        return apigateway.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":")))


class ReadApi(Construct):
    """Owns the read-only API Lambda (the app's health, token and query endpoints served by the
    same FastAPI code through mangum), its execution role (read access to the database, token-key
    and API-client secrets only), log groups, security group and its path into the database, the
    `live` alias, and the HTTP API (explicit routes, stage throttling, access logs) invoking it.

    The function fetches its secrets at cold start; nothing secret is in its environment.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        name_prefix: str,
        code: lambda_.Code,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        vpc: ec2.IVpc,
        vpc_cidr: str,
        database_security_group: ec2.ISecurityGroup,
        database_port: int,
        database_name: str,
        database_secret_arn: str,
        jwt_signing_key_secret_arn: str,
        api_clients_secret_arn: str,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function_name = f"{name_prefix}-read-api"

        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="Read API Lambda", allow_all_outbound=False
        )
        # Secrets Manager through its interface endpoint (inside the VPC): no route to the internet.
        self.security_group.add_egress_rule(
            ec2.Peer.ipv4(vpc_cidr), ec2.Port.tcp(HTTPS_PORT), "Secrets Manager endpoint"
        )
        # Both rules in this (the consumer's) stack: a rule in the data stack naming this group would
        # make the data stack depend on this one while this one depends on it.
        self.security_group.connections.allow_to(
            database_security_group, ec2.Port.tcp(database_port), "Read API to PostgreSQL"
        )

        self.log_group = function_log_group(
            self, "Logs", function_name=self.function_name, retention_days=log_retention_days
        )
        secret_arns = [database_secret_arn, jwt_signing_key_secret_arn, api_clients_secret_arn]
        self.role = execution_role(
            self,
            "ExecutionRole",
            description=f"{self.function_name}: reads its three secrets, writes its logs",
            policy_name="ReadApi",
            statements=[
                log_write_statement(self.log_group),
                network_interface_statement(),
                iam.PolicyStatement(
                    sid="ReadOwnSecrets",
                    actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    resources=secret_arns,
                ),
            ],
        )
        acknowledge_network_interfaces(self.role)

        self.function = lambda_.Function(
            self,
            "Function",
            function_name=self.function_name,
            description="Read-only sensor API (health, token, queries) served through mangum",
            runtime=runtime,
            architecture=architecture,
            code=code,
            handler="handler.handler",
            memory_size=config.read_api_memory_mb,
            timeout=Duration.seconds(config.read_api_timeout_seconds),
            role=self.role.without_policy_updates(),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            log_group=self.log_group,
            environment={
                "APP_ENV": name_prefix,
                "DB_NAME": database_name,
                "DB_SECRET_ARN": database_secret_arn,
                "JWT_SIGNING_KEY_SECRET_ARN": jwt_signing_key_secret_arn,
                "API_CLIENTS_SECRET_ARN": api_clients_secret_arn,
                "SENSOR_DB_SSLMODE": "require",
                "SENSOR_DB_POOL_SIZE": str(DATABASE_POOL_SIZE),
            },
        )
        acknowledge_pinned_runtime(self.function)
        acknowledge_plain_environment(self.function)
        acknowledge_checkov(
            self.function,
            "CKV_AWS_116",
            "Invoked only synchronously by the HTTP API, which returns any error to the caller; there is "
            "no asynchronous invocation whose event a dead-letter queue could keep.",
        )
        acknowledge_checkov(
            self.function,
            "CKV_AWS_115",
            "The HTTP API stage throttles requests (read_api_throttle_rate_per_second), which bounds "
            "concurrency; reserving it would also take from the account's unreserved pool (10 on new accounts).",
        )
        self.alias = lambda_.Alias(
            self, "LiveAlias", alias_name=ALIAS_NAME, version=self.function.current_version
        )

        self.http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=self.function_name,
            description=f"{name_prefix}: read-only sensor API (bearer tokens from POST /auth/token)",
            create_default_stage=False,
        )
        integration = integrations.HttpLambdaIntegration(
            "LiveAlias",
            self.alias,
            payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
            # Answer (even with a timeout error) before API Gateway's own 30 s limit cuts in.
            timeout=Duration.seconds(config.read_api_timeout_seconds + 1),
        )
        for method, path in READ_ROUTES:
            self.http_api.add_routes(path=path, methods=[method], integration=integration)
        acknowledge(
            self.http_api,
            "APIG4",
            "Authorization is the app's own bearer-token check, the same code as the ingestion service; "
            "/health and POST /auth/token are public by design (the token endpoint checks client secrets).",
        )

        self.access_log_group = logs.LogGroup(
            self,
            "AccessLogs",
            retention=log_retention(log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.read_api_throttle_rate_per_second,
                burst_limit=config.read_api_throttle_burst,
            ),
            access_log_settings=_AccessLogs(self.access_log_group),
        )
        self.url = self.stage.url
