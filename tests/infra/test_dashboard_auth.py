"""The dashboard in AWS (service.dashboard_auth in cdk.json): without a provider no rule is added and the app
uses its own sign-in form; with Cognito or OIDC the ALB authenticates /dashboard* on the HTTPS listener before
forwarding to a target group every task joins, and the tasks are told to trust only this ALB's signed header.
Bad configuration stops synth naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from environments.config import ConfigError, load_environment
from tests.infra.conftest import Synthesized, committed_environment

OIDC = {"issuer": "https://idp.example.com", "authorization_endpoint": "https://idp.example.com/authorize",
        "token_endpoint": "https://idp.example.com/token", "user_info_endpoint": "https://idp.example.com/userinfo",
        "client_id": "sensor-dashboard", "client_secret_name": "sensor-prod/dashboard-oidc"}
COGNITO = {"user_pool_arn": "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_AbCdEf123",
           "user_pool_client_id": "4example5client6id", "user_pool_domain": "sensor-prod-dashboard"}


def dashboard_rules(env: Synthesized) -> list[dict[str, Any]]:
    rules = env.service.find_resources("AWS::ElasticLoadBalancingV2::ListenerRule")
    return [rule["Properties"] for rule in rules.values()
            if any("/dashboard" in value for condition in rule["Properties"]["Conditions"]
                   for value in condition.get("PathPatternConfig", {}).get("Values", []))]


def container_environment(env: Synthesized) -> dict[str, Any]:
    (task,) = env.service.find_resources("AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    return {item["Name"]: item["Value"] for item in container["Environment"]}


def test_no_provider_no_rule_and_the_app_signs_viewers_in(each_env: Synthesized) -> None:
    assert dashboard_rules(each_env) == []
    assert "SENSOR_DASHBOARD_AUTH" not in container_environment(each_env)


@pytest.mark.slow
@pytest.mark.parametrize(("provider", "block", "action_type"), [
    ("oidc", OIDC, "authenticate-oidc"), ("cognito", COGNITO, "authenticate-cognito")])
def test_provider_puts_an_authenticate_action_on_dashboard_paths(synth_variant, provider: str, block: dict,
                                                                 action_type: str) -> None:
    env = synth_variant("prod", lambda raw: raw["service"].update(dashboard_auth={"provider": provider,
                                                                                  provider: block}))
    (rule,) = dashboard_rules(env)
    assert rule["Priority"] < 10, "evaluated before the production rule's /*"
    read_rules = env.templates["Pipeline"].find_resources("AWS::ElasticLoadBalancingV2::ListenerRule")
    assert read_rules, "the read API's /read/* rule shares the HTTPS listener"
    assert rule["Priority"] not in {other["Properties"]["Priority"] for other in read_rules.values()}, (
        "an ALB listener takes each rule priority once")
    assert rule["Conditions"][0]["PathPatternConfig"]["Values"] == ["/dashboard", "/dashboard/*"]
    authenticate, forward = sorted(rule["Actions"], key=lambda action: action["Order"])
    assert authenticate["Type"] == action_type and forward["Type"] == "forward"
    if provider == "oidc":
        config = authenticate["AuthenticateOidcConfig"]
        assert config["Issuer"] == OIDC["issuer"] and config["ClientId"] == OIDC["client_id"]
        assert "secretsmanager:sensor-prod/dashboard-oidc" in str(config["ClientSecret"]), "never in the template"
    else:
        assert authenticate["AuthenticateCognitoConfig"]["UserPoolArn"] == COGNITO["user_pool_arn"]
    https = [key for key, listener in env.service.find_resources("AWS::ElasticLoadBalancingV2::Listener").items()
             if listener["Properties"]["Port"] == 443]
    assert rule["ListenerArn"] == {"Ref": https[0]}
    environment = container_environment(env)
    assert environment["SENSOR_DASHBOARD_AUTH"] == "alb"
    assert "Ref" in environment["SENSOR_ALB_ARN"], "the app trusts only this ALB's signature"
    service = next(iter(env.service.find_resources("AWS::ECS::Service").values()))["Properties"]
    groups = {str(lb["TargetGroupArn"]) for lb in service["LoadBalancers"]}
    assert any("Dashboard" in group for group in groups), "every task joins the dashboard target group"


@pytest.mark.parametrize(("dashboard_auth", "key", "fragment"), [
    ({"provider": "oidc"}, "service.dashboard_auth", "needs the oidc block"),
    ({"provider": "none", "oidc": OIDC}, "service.dashboard_auth", "provider is 'none'"),
    ({"provider": "oidc", "oidc": {**OIDC, "issuer": "http://idp.example.com"}}, "service.dashboard_auth.oidc.issuer",
     "pattern"),
    ({"provider": "cognito", "cognito": {**COGNITO, "extra": 1}}, "service.dashboard_auth.cognito.extra", "xtra"),
])
def test_bad_dashboard_auth_names_the_key(dashboard_auth: dict, key: str, fragment: str) -> None:
    raw = committed_environment("prod")
    raw["service"]["dashboard_auth"] = dashboard_auth
    with pytest.raises(ConfigError) as raised:
        load_environment({"prod": raw}, "prod")
    assert key in str(raised.value) and fragment in str(raised.value)


def test_alb_authentication_needs_an_https_listener() -> None:
    raw = committed_environment("dev")
    raw.pop("certificate_arn", None)
    raw["allow_plain_http"] = True  # the explicit opt-out: plain HTTP may serve the API, never ALB sign-in
    raw["service"]["dashboard_auth"] = {"provider": "oidc", "oidc": OIDC}
    with pytest.raises(ConfigError, match=r"service\.dashboard_auth\.provider.*certificate_arn"):
        load_environment({"dev": raw}, "dev")
