"""Customer-managed KMS keys for each stack's log groups and secrets (checkov CKV_AWS_158/149).

Applied once per stack after its constructs exist (`encrypt_logs_and_secrets`), so every log group
and secret a component creates, now or later, is covered without each component passing a key.
One key per stack and purpose keeps the key policies local: no stack grants another's key.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager

from cdk.components.checkov import acknowledge_checkov
from environments.naming import EnvironmentNames

LOGS_KEY_ID = "LogsKey"
SECRETS_KEY_ID = "SecretsKey"
# What a service needs to encrypt and decrypt data keys for the data it stores on a caller's behalf.
_SERVICE_KEY_ACTIONS = [
    "kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey",
]


def encrypt_logs_and_secrets(stack: cdk.Stack, names: EnvironmentNames) -> None:
    """Give every CloudWatch log group and Secrets Manager secret in `stack` a stack-owned CMK."""
    log_groups = [node for node in stack.node.find_all() if isinstance(node, logs.CfnLogGroup)]
    secrets = [node for node in stack.node.find_all() if isinstance(node, secretsmanager.CfnSecret)]
    if log_groups:
        key = _logs_key(stack, names)
        for log_group in log_groups:
            log_group.kms_key_id = key.key_arn
    if secrets:
        key = _secrets_key(stack, names)
        for secret in secrets:
            secret.kms_key_id = key.key_arn


def _key(stack: cdk.Stack, construct_id: str, description: str) -> kms.Key:
    # Retained on delete: a scheduled key deletion would make retained logs and secrets unreadable.
    return kms.Key(
        stack, construct_id, description=description, enable_key_rotation=True, removal_policy=cdk.RemovalPolicy.RETAIN
    )


def _logs_key(stack: cdk.Stack, names: EnvironmentNames) -> kms.Key:
    key = _key(stack, LOGS_KEY_ID, f"{names.prefix}: {stack.stack_name} CloudWatch Logs encryption")
    # CloudWatch Logs uses the key for this account's log groups in this region only.
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=_SERVICE_KEY_ACTIONS,
            resources=["*"],
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": (
                        f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"
                    )
                }
            },
        )
    )
    return key


def _secrets_key(stack: cdk.Stack, names: EnvironmentNames) -> kms.Key:
    key = _key(stack, SECRETS_KEY_ID, f"{names.prefix}: {stack.stack_name} Secrets Manager encryption")
    # The same delegation as the AWS-managed aws/secretsmanager key: a principal of this account may
    # use the key only through Secrets Manager, so whoever may read a secret (its IAM policy) can
    # decrypt it, and nothing else can use the key directly.
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.AnyPrincipal()],
            actions=[*_SERVICE_KEY_ACTIONS, "kms:CreateGrant"],
            resources=["*"],
            conditions={
                "StringEquals": {
                    "kms:CallerAccount": stack.account,
                    "kms:ViaService": f"secretsmanager.{stack.region}.amazonaws.com",
                }
            },
        )
    )
    acknowledge_checkov(
        key,
        "CKV_AWS_33",
        "The wildcard principal is bound by kms:CallerAccount and kms:ViaService (Secrets Manager), exactly "
        "like the AWS-managed aws/secretsmanager key: reading a secret stays governed by IAM on the secret.",
    )
    return key
