"""HSTS on every HTTPS answer, set by the ALB itself (a listener attribute), so no response can miss it."""

from __future__ import annotations

from aws_cdk import aws_elasticloadbalancingv2 as elbv2

HSTS_HEADER_VALUE = "max-age=31536000; includeSubDomains"
HSTS_ATTRIBUTE = "routing.http.response.strict_transport_security.header_value"


def add_hsts(listener: elbv2.ApplicationListener) -> None:
    listener.set_attribute(HSTS_ATTRIBUTE, HSTS_HEADER_VALUE)
