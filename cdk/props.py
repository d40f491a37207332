"""What one stack hands to the next: small frozen records of exactly the values a consumer uses.

Stacks take these (keyword-only) instead of each other, so a stack's signature says what it reads
from its neighbours and nothing else (cdk/app.py wires them). The values are the same CDK objects
and tokens as before: CloudFormation sees the same cross-stack references.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager


@dataclass(frozen=True)
class PlatformNetwork:
    """The VPC and the request path's security groups (Network stack)."""

    vpc: ec2.IVpc
    load_balancer_security_group: ec2.ISecurityGroup
    app_security_group: ec2.ISecurityGroup


@dataclass(frozen=True)
class DatabaseAccess:
    """How a client reaches PostgreSQL: its credentials secret and the group that admits clients."""

    secret: secretsmanager.ISecret
    security_group: ec2.ISecurityGroup
    port: int


@dataclass(frozen=True)
class StreamAccess:
    """The MSK cluster and the readings topic, as producers and the archiver's mapping need them."""

    cluster_arn: str
    topic_arn: str
    topic_name: str
    security_group: ec2.ISecurityGroup
    port: int


@dataclass(frozen=True)
class LakeAccess:
    """The data-lake bucket (fixed name) and the bucket that receives access logs."""

    bucket_name: str
    access_logs: s3.IBucket


@dataclass(frozen=True)
class StateStoreAccess:
    """What the app's task needs to connect to the shared state store as its IAM user."""

    url: str
    cache_name: str
    user_id: str
    user_arn: str


@dataclass(frozen=True)
class ServiceEdge:
    """The ingestion service's public edge and the secrets its token endpoint uses (Service stack),
    shared by the read API, which serves behind the same listener."""

    production_listener: elbv2.IApplicationListener
    url: str
    jwt_signing_key_secret_arn: str
    api_clients_secret_arn: str


@dataclass(frozen=True)
class LoadBalancerNames:
    """The full names CloudFormation generates for the ALB and its target groups (metric dimensions)."""

    load_balancer: str
    blue_target_group: str
    green_target_group: str
