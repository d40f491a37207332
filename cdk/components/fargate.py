"""What every Fargate task definition of the platform shares: Linux on x86_64, and the one wildcard
its execution role needs."""

from __future__ import annotations

from aws_cdk import aws_ecs as ecs
from constructs import Construct

from cdk.components.nag import acknowledge


def linux_task_definition(scope: Construct, construct_id: str, *, cpu: int, memory_mib: int) -> ecs.FargateTaskDefinition:
    """A Fargate task definition for Linux on x86_64 (the images are built for it)."""
    task_definition = ecs.FargateTaskDefinition(
        scope,
        construct_id,
        cpu=cpu,
        memory_limit_mib=memory_mib,
        runtime_platform=ecs.RuntimePlatform(
            cpu_architecture=ecs.CpuArchitecture.X86_64,
            operating_system_family=ecs.OperatingSystemFamily.LINUX,
        ),
    )
    acknowledge(
        task_definition,
        "IAM5[Resource::*]",
        "ecr:GetAuthorizationToken (execution role) supports no resource-level permissions; image "
        "pulls themselves are scoped to the asset repository.",
    )
    return task_definition
