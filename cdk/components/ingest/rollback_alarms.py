"""The alarms that roll an ECS deployment back: 5xx from the tasks, unhealthy targets, p99 latency.

Each is computed over both colours, because the new tasks may sit behind either target group.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

PERIOD = Duration.minutes(1)
EVALUATION_PERIODS = 2
ColourMetric = Callable[[elbv2.ApplicationTargetGroup], cloudwatch.IMetric]


def _over_colours(
    colours: tuple[tuple[str, elbv2.ApplicationTargetGroup], ...], expression: str, label: str, metric: ColourMetric
) -> cloudwatch.MathExpression:
    return cloudwatch.MathExpression(
        expression=expression,
        using_metrics={colour: metric(group) for colour, group in colours},
        label=label,
        period=PERIOD,
    )


def rollback_alarms(
    scope: Construct,
    *,
    name_prefix: str,
    colours: tuple[tuple[str, elbv2.ApplicationTargetGroup], ...],
    p99_latency_ms: int,
) -> list[cloudwatch.Alarm]:
    """Target 5xx summed over blue and green, unhealthy targets and the p99 target response time of the
    slower colour (`rollback_p99_latency_ms`); two of two one-minute periods breaching."""
    target_5xx = _over_colours(
        colours, "FILL(blue, 0) + FILL(green, 0)", "Target 5xx (blue + green)",
        lambda group: group.metrics.http_code_target(
            elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=PERIOD, statistic="Sum"
        ),
    )
    unhealthy = _over_colours(
        colours, "MAX([FILL(blue, 0), FILL(green, 0)])", "Unhealthy targets (max of blue, green)",
        lambda group: group.metrics.unhealthy_host_count(period=PERIOD, statistic="Maximum"),
    )
    # p99 of each colour's own target response time (seconds); the slower colour decides.
    p99_latency = _over_colours(
        colours, "MAX([FILL(blue, 0), FILL(green, 0)])", "p99 target response time, seconds (max of blue, green)",
        lambda group: group.metrics.target_response_time(period=PERIOD, statistic="p99"),
    )
    at_least = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
    specs = (
        ("DeploymentTarget5xxAlarm", "target-5xx", "the app answers 5xx.", target_5xx, 10, at_least),
        ("DeploymentUnhealthyTargetsAlarm", "unhealthy-targets", "targets fail health checks.", unhealthy, 1,
         at_least),
        ("DeploymentP99LatencyAlarm", "p99-latency", f"p99 target response time above {p99_latency_ms} ms.",
         p99_latency, p99_latency_ms / 1000, cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD),
    )
    return [
        cloudwatch.Alarm(
            scope,
            construct_id,
            alarm_name=f"{name_prefix}-deployment-{suffix}",
            alarm_description=f"Rolls back an ECS deployment: {what}",
            metric=metric,
            threshold=threshold,
            evaluation_periods=EVALUATION_PERIODS,
            datapoints_to_alarm=EVALUATION_PERIODS,
            comparison_operator=comparison,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for construct_id, suffix, what, metric, threshold, comparison in specs
    ]
