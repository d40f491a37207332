"""The read-only API: the app's query endpoints in a Lambda behind the service's ALB (`/read/...`)."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_elasticloadbalancingv2_targets as elbv2_targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk.components.lambda_common import read_secrets_statement
from cdk.components.vpc_function import FunctionCode, FunctionPolicy, InvocationReasons, VpcPythonFunction
from cdk.props import DatabaseAccess, ServiceEdge
from environments.naming import EnvironmentNames

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


class ReadApi(VpcPythonFunction):
    """Owns the read-only API Lambda (the app's health, token and query endpoints served by the
    same FastAPI code through mangum) with its role (read access to the database, token-key and
    API-client secrets only), log group and security group (`VpcPythonFunction`), its path into the
    database, the `live` alias, and its place behind the service's ALB: a Lambda target group on the
    alias and a listener rule for `/read` and `/read/*` on the production listener (HTTPS), in front of
    the ECS service's own rule.

    The function fetches its secrets at cold start; nothing secret is in its environment.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *,
        names: EnvironmentNames,
        code: FunctionCode,
        vpc: ec2.IVpc,
        vpc_cidr: str,
        database: DatabaseAccess,
        database_name: str,
        edge: ServiceEdge,
        log_retention_days: int,
    ) -> None:
        super().__init__(
            scope, construct_id, function_name=names.read_api_function, vpc=vpc,
            security_group_description="Read API Lambda",
        )
        self._allow_secrets_manager(vpc_cidr)
        # Both rules in this (the consumer's) stack: a rule in the data stack naming this group would
        # make the data stack depend on this one while this one depends on it.
        self.security_group.connections.allow_to(
            database.security_group, ec2.Port.tcp(database.port), "Read API to PostgreSQL"
        )
        database_secret_arn = database.secret.secret_arn
        secret_arns = [database_secret_arn, edge.jwt_signing_key_secret_arn, edge.api_clients_secret_arn]
        self._add_function(
            description="Read-only sensor API (health, token, queries) served through mangum",
            code=code,
            policy=FunctionPolicy(
                name="ReadApi", description=f"{self.function_name}: reads its three secrets, writes its logs",
                statements=(read_secrets_statement("ReadOwnSecrets", secret_arns, describe=True),),
            ),
            environment={
                "APP_ENV": names.prefix,
                "DB_NAME": database_name,
                "DB_SECRET_ARN": database_secret_arn,
                "JWT_SIGNING_KEY_SECRET_ARN": edge.jwt_signing_key_secret_arn,
                "API_CLIENTS_SECRET_ARN": edge.api_clients_secret_arn,
                # TLS to RDS verified against the RDS CA bundle shipped in the Lambda bundle.
                "SENSOR_DB_SSLMODE": "verify-full",
                "SENSOR_DB_SSL_ROOT_CERT": f"/var/task/{RDS_CA_BUNDLE_IN_LAMBDA}",
                "SENSOR_DB_POOL_SIZE": str(DATABASE_POOL_SIZE),
            },
            reasons=InvocationReasons(
                no_dead_letter_queue=(
                    "Invoked only synchronously by the HTTP API, which returns any error to the caller; there "
                    "is no asynchronous invocation whose event a dead-letter queue could keep."
                ),
                no_reserved_concurrency=(
                    "The HTTP API stage throttles requests (read_api_throttle_rate_per_second), which bounds "
                    "concurrency; reserving it would also take from the account's unreserved pool (10 on new "
                    "accounts)."
                ),
            ),
            log_retention_days=log_retention_days,
        )
        self._add_live_alias()
        self._serve_behind(edge)

    def _serve_behind(self, edge: ServiceEdge) -> None:
        """The ALB invokes the alias, so CodeDeploy's traffic shifting applies to ALB traffic too."""
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
            listener=edge.production_listener,
            priority=READ_RULE_PRIORITY,
            conditions=[elbv2.ListenerCondition.path_patterns([READ_PATH_PREFIX, f"{READ_PATH_PREFIX}/*"])],
            action=elbv2.ListenerAction.forward([self.target_group]),
        )
        self.url = f"{edge.url}{READ_PATH_PREFIX}"
