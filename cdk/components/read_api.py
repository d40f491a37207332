"""The read-only API: the app's query endpoints in a Lambda behind the service's ALB (`/read/...`)."""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_elasticloadbalancingv2_targets as elbv2_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
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
from cdk.config import PipelineConfig

# Served through the service's ALB under this path prefix (the handler strips it): the same edge as
# ingest, so the same WAF web ACL (per-IP rate limit, managed rules, redacted logging), the same TLS
# listener with HSTS and the same access logs (docs/security.md, "The read API's edge").
READ_PATH_PREFIX = "/read"
# Evaluated before the service's own forward rule (priority 10), which ECS re-weights during deployments.
READ_RULE_PRIORITY = 5
# Where the Lambda bundle carries the RDS CA bundle (cdk/stacks/pipeline.py adds it).
RDS_CA_BUNDLE_IN_LAMBDA = "rds-global-bundle.pem"
# A Lambda execution environment serves one request at a time: one pooled connection is enough.
DATABASE_POOL_SIZE = 1


class ReadApi(Construct):
    """Owns the read-only API Lambda (the app's health, token and query endpoints served by the
    same FastAPI code through mangum), its execution role (read access to the database, token-key
    and API-client secrets only), log groups, security group and its path into the database, the
    `live` alias, and its place behind the service's ALB: a Lambda target group on the alias and a
    listener rule for `/read` and `/read/*` on the production listener (HTTPS), in front of the ECS
    service's own rule.

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
        listener: elbv2.IApplicationListener,
        base_url: str,
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
                # TLS to RDS verified against the RDS CA bundle shipped in the Lambda bundle.
                "SENSOR_DB_SSLMODE": "verify-full",
                "SENSOR_DB_SSL_ROOT_CERT": f"/var/task/{RDS_CA_BUNDLE_IN_LAMBDA}",
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

        # The ALB invokes the alias, so CodeDeploy's traffic shifting applies to ALB traffic too.
        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "TargetGroup",
            target_type=elbv2.TargetType.LAMBDA,
            targets=[elbv2_targets.LambdaTarget(self.alias)],
        )
        # The target's invoke permission names no target group (naming it would be a cycle in
        # CloudFormation): limit it to load balancers of this account at least.
        for child in self.alias.node.children:
            if isinstance(child, lambda_.CfnPermission) and child.principal == "elasticloadbalancing.amazonaws.com":
                child.source_account = Aws.ACCOUNT_ID
        self.listener_rule = elbv2.ApplicationListenerRule(
            self,
            "ListenerRule",
            listener=listener,
            priority=READ_RULE_PRIORITY,
            conditions=[elbv2.ListenerCondition.path_patterns([READ_PATH_PREFIX, f"{READ_PATH_PREFIX}/*"])],
            action=elbv2.ListenerAction.forward([self.target_group]),
        )
        self.url = f"{base_url}{READ_PATH_PREFIX}"
