"""On-call monitoring: CloudWatch alarms from `monitoring/catalogue.py`, one SNS topic per severity,
the platform-down composite alarm, and the dashboards of `monitoring/dashboards.py`."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from monitoring import catalogue
from monitoring import dashboards as dashboard_specs
from monitoring.catalogue import AlarmSpec, Deployed, Source

_COMPARISON = {
    "GreaterThanThreshold": cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    "GreaterThanOrEqualToThreshold": cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    "LessThanThreshold": cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    "LessThanOrEqualToThreshold": cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
}
_MISSING = {
    "breaching": cloudwatch.TreatMissingData.BREACHING,
    "notBreaching": cloudwatch.TreatMissingData.NOT_BREACHING,
    "ignore": cloudwatch.TreatMissingData.IGNORE,
    "missing": cloudwatch.TreatMissingData.MISSING,
}
_THRESHOLD_COLOUR = {"critical": cloudwatch.Color.RED, "warning": cloudwatch.Color.ORANGE}


def render(source: Source, period: Duration) -> cloudwatch.IMetric:
    """A catalogue metric (or metric-math expression) as a CDK metric."""
    if isinstance(source, catalogue.MathExpression):
        return cloudwatch.MathExpression(
            expression=source.expression,
            using_metrics={key: render(metric, period) for key, metric in source.metrics.items()},
            label=source.label,
            period=period,
        )
    return cloudwatch.Metric(
        namespace=source.namespace,
        metric_name=source.name,
        dimensions_map=dict(source.dimensions),
        statistic=source.statistic,
        period=period,
        label=source.label or None,
    )


class OnCallMonitoring(Construct):
    """Owns the KMS key and the `critical` / `warning` SNS topics (TLS-only, encrypted, e-mail
    subscription when `alarm_email` is set), one CloudWatch alarm per active catalogue entry (ALARM
    and OK to its severity's topic), the `critical-platform-down` composite alarm, and the dashboards."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deployed: Deployed,
        runbook_base_url: str,
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._deployed = deployed
        self._runbook_base_url = runbook_base_url
        name_prefix = deployed.name_prefix

        # CloudWatch cannot publish to a topic encrypted with the AWS managed key (its policy admits
        # no service principals): a customer managed key that CloudWatch may use, rotated yearly.
        self.topic_key = kms.Key(
            self,
            "TopicKey",
            description=f"{name_prefix}: encrypts the alarm notification topics",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.topic_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy: this key
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        self.topics: dict[str, sns.Topic] = {}
        for severity in catalogue.SEVERITIES:
            topic = sns.Topic(
                self,
                f"{severity.capitalize()}Topic",
                topic_name=f"{name_prefix}-{severity}",
                display_name=f"{name_prefix} {severity} alarms",
                master_key=self.topic_key,
                enforce_ssl=True,
            )
            # The topic policy replaces SNS's default one: admit this environment's alarms explicitly.
            topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="CloudWatchAlarmsPublish",
                    principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                    actions=["sns:Publish"],
                    resources=[topic.topic_arn],
                    conditions={
                        "ArnLike": {
                            "aws:SourceArn": Stack.of(self).format_arn(
                                service="cloudwatch",
                                resource="alarm",
                                resource_name=f"{name_prefix}-*",
                                arn_format=ArnFormat.COLON_RESOURCE_NAME,
                            )
                        },
                        "StringEquals": {"aws:SourceAccount": Stack.of(self).account},
                    },
                )
            )
            if alarm_email is not None:
                topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
            self.topics[severity] = topic

        self.alarms: dict[str, cloudwatch.Alarm] = {
            spec.name: self._alarm(spec) for spec in catalogue.active(deployed)
        }
        self.platform_down = self._platform_down()
        self.dashboards: dict[str, cloudwatch.Dashboard] = {
            spec.suffix: self._dashboard(spec) for spec in dashboard_specs.DASHBOARDS
        }

    def _alarm(self, spec: AlarmSpec) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            _construct_id(spec.name),
            alarm_name=spec.alarm_name(self._deployed.name_prefix),
            alarm_description=spec.alarm_description(self._runbook_base_url),
            metric=render(spec.source(self._deployed), Duration.seconds(spec.period_seconds)),
            threshold=spec.threshold_for(self._deployed),
            evaluation_periods=spec.evaluation_periods,
            datapoints_to_alarm=spec.datapoints_to_alarm,
            comparison_operator=_COMPARISON[spec.comparison],
            treat_missing_data=_MISSING[spec.treat_missing_data],
        )
        self._notify(alarm, spec.severity)
        return alarm

    def _notify(self, alarm: cloudwatch.AlarmBase, severity: str) -> None:
        action = cw_actions.SnsAction(self.topics[severity])
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)

    def _platform_down(self) -> cloudwatch.CompositeAlarm:
        def state(name: str) -> cloudwatch.AlarmRule:
            return cloudwatch.AlarmRule.from_alarm(self.alarms[name], cloudwatch.AlarmState.ALARM)

        runbooks = ", ".join(
            f"{self._runbook_base_url}{name}.md"
            for name in (catalogue.PLATFORM_DOWN_ALL_OF, *catalogue.PLATFORM_DOWN_ANY_OF)
        )
        composite = cloudwatch.CompositeAlarm(
            self,
            "PlatformDown",
            composite_alarm_name=f"{self._deployed.name_prefix}-critical-{catalogue.PLATFORM_DOWN}",
            alarm_description=(
                "The platform is down for devices: targets are unhealthy AND requests fail (target 5xx "
                f"rate or ELB 5xx). Runbooks: {runbooks}"
            ),
            alarm_rule=cloudwatch.AlarmRule.all_of(
                state(catalogue.PLATFORM_DOWN_ALL_OF),
                cloudwatch.AlarmRule.any_of(*(state(name) for name in catalogue.PLATFORM_DOWN_ANY_OF)),
            ),
        )
        self._notify(composite, "critical")
        return composite

    def _dashboard(self, spec: dashboard_specs.Dashboard) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(
            self,
            f"{spec.suffix.capitalize()}Dashboard",
            dashboard_name=spec.dashboard_name(self._deployed.name_prefix),
        )
        for widget in spec.widgets:
            rendered = self._widget(widget)
            if rendered is not None:
                dashboard.add_widgets(rendered)
        return dashboard

    def _widget(self, widget: dashboard_specs.Widget) -> cloudwatch.IWidget | None:
        if isinstance(widget, dashboard_specs.AlarmStatus):
            alarms: list[cloudwatch.IAlarm] = (
                [*self.alarms.values(), self.platform_down]
                if widget.alarms is None
                else [self.alarms[name] for name in widget.alarms if name in self.alarms]
            )
            return cloudwatch.AlarmStatusWidget(alarms=alarms, title=widget.title, width=widget.width)
        if isinstance(widget, dashboard_specs.RunbookLinks):
            lines = [f"## {widget.title}", ""]
            lines += [
                f"- `{spec.alarm_name(self._deployed.name_prefix)}`: "
                f"[{spec.runbook}]({self._runbook_base_url}{spec.runbook})"
                for spec in catalogue.active(self._deployed)
            ]
            return cloudwatch.TextWidget(markdown="\n".join(lines), width=widget.width, height=8)
        sources = widget.sources(self._deployed)
        if not sources:
            return None
        period = Duration.seconds(widget.period_seconds)
        annotations = [
            cloudwatch.HorizontalAnnotation(
                value=spec.threshold_for(self._deployed),
                label=f"{spec.severity}: {spec.name}",
                color=_THRESHOLD_COLOUR[spec.severity],
            )
            for spec in (catalogue.by_name(name) for name in widget.thresholds)
            if spec.applies(self._deployed)
        ]
        annotations += [
            cloudwatch.HorizontalAnnotation(value=value, label=label, color=cloudwatch.Color.GREY)
            for label, value in widget.lines(self._deployed)
        ]
        return cloudwatch.GraphWidget(
            title=widget.title,
            left=[render(source, period) for source in sources],
            left_annotations=annotations,
            period=period,
            width=widget.width,
            height=widget.height,
        )


def _construct_id(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-")) + "Alarm"
