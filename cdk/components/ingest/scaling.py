"""Task autoscaling of the service: CPU target tracking, and requests per running task over both colours."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from environments.config import ScalingConfig


def autoscale(
    scope: Construct,
    *,
    service: ecs.FargateService,
    config: ScalingConfig,
    load_balancer_full_name: str,
    colours: tuple[tuple[str, elbv2.ApplicationTargetGroup], ...],
    cluster_name: str,
) -> None:
    """`min_tasks`..`max_tasks`, scaled on CPU (`CpuScaling`) and on requests per running task
    (`RequestScaling`), counting blue AND green: during a deployment traffic moves to the alternate
    target group, and a policy on one group would see its load vanish. The L2 refuses metric math in
    target tracking, so the request policy is the L1 (AWS accepts any metric-math function here)."""
    scaling = service.auto_scale_task_count(min_capacity=config.min_tasks, max_capacity=config.max_tasks)
    scaling.scale_on_cpu_utilization(
        "CpuScaling",
        target_utilization_percent=config.cpu_target_percent,
        scale_in_cooldown=Duration.seconds(config.scale_in_cooldown_seconds),
        scale_out_cooldown=Duration.seconds(config.scale_out_cooldown_seconds),
    )
    queries = [
        _metric_query(colour, "AWS/ApplicationELB", "RequestCount", "Sum",
                      TargetGroup=group.target_group_full_name, LoadBalancer=load_balancer_full_name)
        for colour, group in colours
    ]
    queries.append(_metric_query("tasks", "ECS/ContainerInsights", "RunningTaskCount", "Average",
                                 ClusterName=cluster_name, ServiceName=service.service_name))
    queries.append({
        "id": "per_task",
        "expression": "(FILL(blue, 0) + FILL(green, 0)) / FILL(tasks, 1)",
        "label": "ALB requests per running task (blue + green)",
        "returnData": True,
    })
    appscaling.CfnScalingPolicy(
        scope,
        "RequestScaling",
        policy_name=f"{service.service_name}-requests-per-task",
        policy_type="TargetTrackingScaling",
        scaling_target_id=scaling.node.find_child("Target").scalable_target_id,
        target_tracking_scaling_policy_configuration={
            "targetValue": config.requests_per_target,
            "scaleInCooldown": config.scale_in_cooldown_seconds,
            "scaleOutCooldown": config.scale_out_cooldown_seconds,
            "customizedMetricSpecification": {"metrics": queries},
        },
    )


def _metric_query(query_id: str, namespace: str, name: str, statistic: str, **dimensions: str) -> dict:
    return {
        "id": query_id,
        "returnData": False,
        "metricStat": {
            "metric": {"namespace": namespace, "metricName": name,
                       "dimensions": [{"name": key, "value": value} for key, value in dimensions.items()]},
            "stat": statistic,
        },
    }
