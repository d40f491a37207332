"""The base construct of every Python Lambda function the platform runs in the VPC's private subnets.

The archiver, the read API and the blue/green smoke-test hook are each one of these plus what is
their own (an event source, a target group, a lifecycle hook). They subclass it, rather than hold
one, so that the function's resources keep their construct paths (`<Construct>/Function`, `/Logs`,
`/ExecutionRole`, `/SecurityGroup`, `/LiveAlias`) and with them their logical IDs.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

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
from environments.naming import LIVE_ALIAS

HTTPS_PORT = 443
HANDLER = "handler.handler"


@dataclass(frozen=True)
class FunctionCode:
    """What runs and with how much: the bundle, its runtime and architecture, memory and timeout."""

    code: lambda_.Code
    runtime: lambda_.Runtime
    architecture: lambda_.Architecture
    memory_size: int
    timeout: Duration


@dataclass(frozen=True)
class FunctionPolicy:
    """The execution role's one inline policy: `statements` come after writing its own logs and managing
    its ENIs (`network_actions` add to those, e.g. for MSK pollers)."""

    name: str
    description: str
    statements: tuple[iam.PolicyStatement, ...]
    network_actions: tuple[str, ...] = ()
    # Why the ENI statement's `Resource: *` is acceptable (checkov CKV_AWS_111, cdk-nag IAM5); None: the
    # standard reason (lambda_common.acknowledge_network_interfaces).
    network_reason: str | None = None


@dataclass(frozen=True)
class InvocationReasons:
    """Why the function has no dead-letter queue (checkov CKV_AWS_116) and no reserved concurrency
    (CKV_AWS_115); `runtime`: why its runtime is pinned (cdk-nag L1), None for the shared reason."""

    no_dead_letter_queue: str
    no_reserved_concurrency: str
    runtime: str | None = None


class VpcPythonFunction(Construct):
    """Owns one VPC-attached Python function: its security group (no outbound until a subclass adds a
    path), its log group (created up front so retention applies), its execution role (one inline
    policy, no automatic grants: `without_policy_updates`), the function in the private subnets, and,
    when asked, the `live` alias on its current version."""

    def __init__(
        self, scope: Construct, construct_id: str, *, function_name: str, vpc: ec2.IVpc, security_group_description: str
    ) -> None:
        super().__init__(scope, construct_id)
        self.function_name = function_name
        self._vpc = vpc
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description=security_group_description, allow_all_outbound=False
        )

    def _allow_secrets_manager(self, vpc_cidr: str) -> None:
        """Secrets Manager through its interface endpoint (inside the VPC): no route to the internet."""
        self.security_group.add_egress_rule(
            ec2.Peer.ipv4(vpc_cidr), ec2.Port.tcp(HTTPS_PORT), "Secrets Manager endpoint"
        )

    def _add_function(
        self,
        *,
        description: str,
        code: FunctionCode,
        policy: FunctionPolicy,
        environment: dict[str, str],
        reasons: InvocationReasons,
        log_retention_days: int,
    ) -> lambda_.Function:
        self.log_group = function_log_group(
            self, "Logs", function_name=self.function_name, retention_days=log_retention_days
        )
        self.role = execution_role(
            self,
            "ExecutionRole",
            description=policy.description,
            policy_name=policy.name,
            statements=[
                log_write_statement(self.log_group),
                network_interface_statement(*policy.network_actions),
                *policy.statements,
            ],
        )
        if policy.network_reason is None:
            acknowledge_network_interfaces(self.role)
        else:
            acknowledge(self.role, "IAM5[Resource::*]", policy.network_reason)
            acknowledge_checkov(self.role, "CKV_AWS_111", policy.network_reason)

        self.function = lambda_.Function(
            self,
            "Function",
            function_name=self.function_name,
            description=description,
            runtime=code.runtime,
            architecture=code.architecture,
            code=code.code,
            handler=HANDLER,
            memory_size=code.memory_size,
            timeout=code.timeout,
            role=self.role.without_policy_updates(),
            vpc=self._vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            log_group=self.log_group,
            environment=environment,
        )
        if reasons.runtime is None:
            acknowledge_pinned_runtime(self.function)
        else:
            acknowledge(self.function, "L1", reasons.runtime)
        acknowledge_plain_environment(self.function)
        acknowledge_checkov(self.function, "CKV_AWS_116", reasons.no_dead_letter_queue)
        acknowledge_checkov(self.function, "CKV_AWS_115", reasons.no_reserved_concurrency)
        return self.function

    def _add_live_alias(self) -> lambda_.Alias:
        """The alias traffic goes through, so CodeDeploy can shift it between versions (blue/green)."""
        self.alias = lambda_.Alias(self, "LiveAlias", alias_name=LIVE_ALIAS, version=self.function.current_version)
        return self.alias
