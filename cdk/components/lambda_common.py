"""IAM statements and cdk-nag acknowledgements every Lambda function of the platform shares."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from cdk.components.checkov import acknowledge_checkov
from cdk.components.nag import acknowledge
from cdk.components.retention import log_retention

# ENI management for a function in a VPC and for the event source mapping's pollers, which Lambda
# creates in the cluster's subnets. EC2 supports no resource-level scoping for the Describe calls.
VPC_NETWORK_INTERFACE_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "ec2:DescribeSubnets",
)
EVENT_SOURCE_NETWORK_ACTIONS = ("ec2:DescribeSecurityGroups", "ec2:DescribeVpcs")


def network_interface_statement(*extra_actions: str) -> iam.PolicyStatement:
    """ENI permissions a VPC-attached function's execution role needs (`Resource: *`, see above)."""
    return iam.PolicyStatement(
        sid="VpcNetworkInterfaces",
        actions=[*VPC_NETWORK_INTERFACE_ACTIONS, *extra_actions],
        resources=["*"],
    )


def log_write_statement(log_group: logs.ILogGroup) -> iam.PolicyStatement:
    """Writing to the function's own log group only (its ARN already covers its streams)."""
    return iam.PolicyStatement(
        sid="WriteOwnLogs",
        actions=["logs:CreateLogStream", "logs:PutLogEvents"],
        resources=[log_group.log_group_arn],
    )


def read_secrets_statement(sid: str, secret_arns: list[str], *, describe: bool = False) -> iam.PolicyStatement:
    """Reading exactly these secrets' values (and, with `describe`, their metadata)."""
    actions = ["secretsmanager:GetSecretValue", *(["secretsmanager:DescribeSecret"] if describe else [])]
    return iam.PolicyStatement(sid=sid, actions=actions, resources=secret_arns)


def acknowledge_pinned_runtime(function: lambda_.Function) -> None:
    """The Lambda runtime is pinned on purpose (cdk/stacks/pipeline.py LAMBDA_RUNTIME)."""
    acknowledge(
        function,
        "L1",
        "Python 3.11 is a supported Lambda runtime pinned on purpose: it is the tests' interpreter and the "
        "bundle's compiled wheels target exactly it, so a newer runtime is a reviewed change of LAMBDA_RUNTIME and a "
        "rebuilt bundle.",
    )


def acknowledge_plain_environment(function: IConstruct) -> None:
    """checkov CKV_AWS_173: no function of the platform keeps a secret in its environment."""
    acknowledge_checkov(
        function,
        "CKV_AWS_173",
        "Lambda encrypts environment variables at rest with its service key; these hold only names, ARNs "
        "and tuning numbers (secrets are fetched from Secrets Manager at run time), so a CMK adds nothing.",
    )


def acknowledge_network_interfaces(role: IConstruct) -> None:
    """The one `Resource: *` a VPC-attached function's role needs (see network_interface_statement)."""
    acknowledge_checkov(
        role,
        "CKV_AWS_111",
        "EC2 network-interface actions for a VPC-attached function support no resource-level "
        "permissions (the same actions as the AWSLambdaVPCAccessExecutionRole managed policy).",
    )
    acknowledge(
        role,
        "IAM5[Resource::*]",
        "EC2 network-interface actions for a VPC-attached function support no resource-level "
        "permissions (the same actions as the AWSLambdaVPCAccessExecutionRole managed policy).",
    )


def function_log_group(
    scope: Construct, construct_id: str, *, function_name: str, retention_days: int
) -> logs.LogGroup:
    """The log group Lambda writes `function_name` to, created up front so retention applies."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=f"/aws/lambda/{function_name}",
        retention=log_retention(retention_days),
        removal_policy=RemovalPolicy.DESTROY,
    )


def execution_role(
    scope: Construct,
    construct_id: str,
    *,
    description: str,
    policy_name: str,
    statements: list[iam.PolicyStatement],
) -> iam.Role:
    """A Lambda execution role whose only permissions are `statements`, in one inline policy."""
    return iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=description,
        inline_policies={policy_name: iam.PolicyDocument(statements=statements)},
    )
