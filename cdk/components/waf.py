"""WAF web ACL in front of the ALB."""

from __future__ import annotations

from aws_cdk import ArnFormat, Fn, RemovalPolicy, Stack
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from cdk.components.retention import log_retention
from environments.config import WafConfig
from environments.naming import EnvironmentNames

# AWS managed rule groups, in evaluation order after the rate limit.
MANAGED_RULE_GROUPS = (
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesSQLiRuleSet",
)
# The common rule set blocks bodies over 8 KB; batches of 100 readings are larger, and the app
# enforces its own body limit (413), so that one rule only counts.
COUNT_ONLY_RULES = {"AWSManagedRulesCommonRuleSet": ("SizeRestrictions_BODY",)}
# Never kept in the WAF log: the bearer token (Authorization), a session cookie, and the query string
# (nothing the platform serves puts a credential there, but a client might). WAF replaces them with
# "REDACTED" before the record is written.
# (The logging configuration's FieldToMatch passes SingleHeader through as JSON: CloudFormation casing.)
REDACTED_FIELDS = (
    wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": "authorization"}),
    wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": "cookie"}),
    wafv2.CfnLoggingConfiguration.FieldToMatchProperty(query_string={}),
)


class EdgeFirewall(Construct):
    """Owns the regional web ACL, its association with the ALB, the allow-listed IP set and the
    WAF log group and logging configuration (credentials redacted: `REDACTED_FIELDS`).

    Rule 0 is a per-IP rate limit that exempts the allow-listed CIDRs and `load_generator_ips`
    (the NAT gateways' Elastic IPs while the LoadTest stack is enabled); the managed rule groups
    apply to everyone.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: WafConfig,
        names: EnvironmentNames,
        load_balancer_arn: str,
        log_retention_days: int,
        load_generator_ips: tuple[str, ...] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        name_prefix = names.prefix
        # The addresses are deploy-time tokens (Elastic IPs), hence Fn.join rather than an f-string.
        addresses = [*config.allow_listed_cidrs, *(Fn.join("", [ip, "/32"]) for ip in load_generator_ips)]

        rate_statement: dict = {
            "limit": config.rate_limit_per_5_minutes,
            "aggregateKeyType": "IP",
        }
        if addresses:
            allow_list = wafv2.CfnIPSet(
                self,
                "AllowList",
                name=f"{name_prefix}-load-generators",
                description="Load generators exempt from the rate limit",
                scope="REGIONAL",
                ip_address_version="IPV4",
                addresses=addresses,
            )
            rate_statement["scopeDownStatement"] = {
                "notStatement": {
                    "statement": {"ipSetReferenceStatement": {"arn": allow_list.attr_arn}}
                }
            }

        rules = [
            {
                "name": "rate-limit-per-ip",
                "priority": 0,
                "action": {"block": {}},
                "statement": {"rateBasedStatement": rate_statement},
                "visibilityConfig": _visibility(f"{name_prefix}-rate-limit"),
            }
        ]
        for priority, group in enumerate(MANAGED_RULE_GROUPS, start=1):
            managed: dict = {"vendorName": "AWS", "name": group}
            if group in COUNT_ONLY_RULES:
                managed["ruleActionOverrides"] = [
                    {"name": rule, "actionToUse": {"count": {}}} for rule in COUNT_ONLY_RULES[group]
                ]
            rules.append(
                {
                    "name": group,
                    "priority": priority,
                    "overrideAction": {"none": {}},
                    "statement": {"managedRuleGroupStatement": managed},
                    "visibilityConfig": _visibility(f"{name_prefix}-{group}"),
                }
            )

        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=names.web_acl,
            scope="REGIONAL",
            default_action={"allow": {}},
            visibility_config=_visibility(names.web_acl),
            rules=rules,
        )
        wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=load_balancer_arn, web_acl_arn=self.web_acl.attr_arn
        )

        # WAF requires the log group name to start with "aws-waf-logs-".
        log_group_name = f"aws-waf-logs-{name_prefix}"
        log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=log_group_name,
            retention=log_retention(log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        logging = wafv2.CfnLoggingConfiguration(
            self,
            "Logging",
            resource_arn=self.web_acl.attr_arn,
            # WAF wants the log group ARN without the trailing ":*" that LogGroup.log_group_arn has.
            log_destination_configs=[
                Stack.of(self).format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=log_group_name,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            redacted_fields=list(REDACTED_FIELDS),
        )
        logging.node.add_dependency(log_group)


def _visibility(metric_name: str) -> dict:
    return {
        "cloudWatchMetricsEnabled": True,
        "metricName": metric_name,
        "sampledRequestsEnabled": True,
    }
