"""LoadTest stack (opt-in, committed in dev): Locust master behind an internal Cognito-authenticated ALB,
N workers (Spot optional), narrow security groups, the results bucket, and the WAF allow-list of the
NAT gateways' addresses; plus its configuration rules and the image's pins."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from environments.config import ConfigError, load_environment
from tests.conftest import REPO_ROOT
from tests.infra.conftest import Synthesized, committed_context, committed_environment, only, synthesize

MASTER_COMMAND = re.compile(r"locust -f loadtests/locust/locustfile\.py --master --expect-workers (\d+) ")


# --- helpers ----------------------------------------------------------------------------------------
def resources(env: Synthesized, resource_type: str) -> dict[str, dict[str, Any]]:
    return env.load_test.find_resources(resource_type)


def logical_id(env: Synthesized, resource_type: str, prefix: str) -> str:
    (match,) = [name for name in resources(env, resource_type) if name.startswith(prefix)]
    return match


def ecs_service(env: Synthesized, name_suffix: str) -> dict[str, Any]:
    (service,) = [s["Properties"] for s in resources(env, "AWS::ECS::Service").values()
                  if s["Properties"]["ServiceName"] == f"sensor-{env.config.name}-loadtest-{name_suffix}"]
    return service


def container(env: Synthesized, service: dict[str, Any]) -> dict[str, Any]:
    task = env.load_test.to_json()["Resources"][service["TaskDefinition"]["Ref"]]["Properties"]
    (definition,) = task["ContainerDefinitions"]
    return definition


def flatten(value: Any) -> str:
    """A command as text, with tokens (Fn::Join parts that are not strings) shown as <token>."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(flatten(part) for part in value)
    if isinstance(value, dict) and "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return delimiter.join(part if isinstance(part, str) else "<token>" for part in parts)
    return "<token>"


def security_group(env: Synthesized, prefix: str) -> str:
    return logical_id(env, "AWS::EC2::SecurityGroup", prefix)


def ingress_rules(env: Synthesized, group: str) -> set[tuple]:
    """(port, source) of every ingress rule of `group`, inline or standalone."""
    props = env.load_test.to_json()["Resources"][group]["Properties"]
    rules = {(r["FromPort"], r["ToPort"], r.get("CidrIp")) for r in props.get("SecurityGroupIngress", [])}
    for rule in resources(env, "AWS::EC2::SecurityGroupIngress").values():
        p = rule["Properties"]
        if p["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}:
            rules.add((p["FromPort"], p["ToPort"], p["SourceSecurityGroupId"]["Fn::GetAtt"][0]))
    return rules


def egress_rules(env: Synthesized, group: str) -> set[tuple]:
    props = env.load_test.to_json()["Resources"][group]["Properties"]
    rules = {(r.get("FromPort"), r.get("ToPort"), r["IpProtocol"], r.get("CidrIp"))
             for r in props.get("SecurityGroupEgress", [])}
    for rule in resources(env, "AWS::EC2::SecurityGroupEgress").values():
        p = rule["Properties"]
        if p["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}:
            rules.add((p["FromPort"], p["ToPort"], p["IpProtocol"], p["DestinationSecurityGroupId"]["Fn::GetAtt"][0]))
    return rules


@pytest.fixture(scope="module")
def prod_with_load_test(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """prod with load_test.enabled: the environment's certificate, no Spot, 3 NAT gateways."""
    raw = committed_environment("prod")
    raw["load_test"]["enabled"] = True
    return synthesize("prod", raw, tmp_path_factory.mktemp("cdk-prod-load-test"))


# --- which environments have it ---------------------------------------------------------------------
def test_only_enabled_environments_have_the_stack(dev: Synthesized, prod: Synthesized) -> None:
    assert dev.config.load_test.enabled and "LoadTest" in dev.templates
    assert dev.platform.load_test is not None and dev.platform.load_test.stack_name == "Sensor-dev-LoadTest"
    assert not prod.config.load_test.enabled and "LoadTest" not in prod.templates
    assert prod.platform.load_test is None


# --- the UI: internal ALB, HTTPS, Cognito before forward -----------------------------------------
def test_ui_load_balancer_is_internal_in_private_subnets_and_logs_access(dev: Synthesized) -> None:
    alb = only(dev.load_test, "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]
    assert alb["Scheme"] == "internal"
    assert all("privateSubnet" in json.dumps(subnet) for subnet in alb["Subnets"])
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"


def test_only_listener_is_https_and_authenticates_with_cognito_before_forwarding(dev: Synthesized) -> None:
    listener = only(dev.load_test, "AWS::ElasticLoadBalancingV2::Listener")["Properties"]
    assert (listener["Port"], listener["Protocol"]) == (443, "HTTPS")
    assert listener["Certificates"] == [{"CertificateArn": dev.config.load_test.certificate_arn}]
    actions = sorted(listener["DefaultActions"], key=lambda action: action["Order"])
    assert [action["Type"] for action in actions] == ["authenticate-cognito", "forward"]
    cognito = actions[0]["AuthenticateCognitoConfig"]
    assert cognito["UserPoolArn"] == {"Fn::GetAtt": [logical_id(dev, "AWS::Cognito::UserPool", "UiUsers"), "Arn"]}
    target_group = logical_id(dev, "AWS::ElasticLoadBalancingV2::TargetGroup", "UiMasterTargetGroup")
    assert actions[1]["TargetGroupArn"] == {"Ref": target_group}
    assert only(dev.load_test, "AWS::ElasticLoadBalancingV2::TargetGroup")["Properties"]["Port"] == 8089


def test_cognito_users_are_admin_created_with_mfa_and_the_client_uses_the_code_flow(dev: Synthesized) -> None:
    pool = only(dev.load_test, "AWS::Cognito::UserPool")["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert pool["MfaConfiguration"] == "ON" and pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] >= 14
    client = only(dev.load_test, "AWS::Cognito::UserPoolClient")["Properties"]
    assert client["GenerateSecret"] is True and client["AllowedOAuthFlows"] == ["code"]
    assert flatten(client["CallbackURLs"][0]) == "https://<token>/oauth2/idpresponse"


# --- master and workers -------------------------------------------------------------------------
def test_master_expects_the_configured_workers_and_exports_results(dev: Synthesized) -> None:
    master = ecs_service(dev, "master")
    assert master["DesiredCount"] == 1
    assert master["DeploymentConfiguration"]["MaximumPercent"] == 100  # never two masters
    command = flatten(container(dev, master)["Command"])
    match = MASTER_COMMAND.search(command)
    assert match and int(match.group(1)) == dev.config.load_test.workers == 4
    assert "--web-port 8089" in command and "--master-bind-port 5557" in command
    assert f"--load-profile {dev.config.load_test.profile}" in command
    assert "python -m loadtests.locust.export_results --dir /srv/results --bucket sensor-dev-loadtest-<token>" in command
    assert "--prefix runs/ --watch 60 -- locust" in command
    assert master["ServiceRegistries"], "workers find the master through Cloud Map"
    namespace = only(dev.load_test, "AWS::ServiceDiscovery::PrivateDnsNamespace")["Properties"]
    assert namespace["Name"] == "loadtest.sensor-dev.internal"
    assert only(dev.load_test, "AWS::ServiceDiscovery::Service")["Properties"]["Name"] == "master"


def test_workers_run_n_tasks_pointing_at_the_master_on_spot_when_configured(dev: Synthesized) -> None:
    workers = ecs_service(dev, "workers")
    assert workers["DesiredCount"] == dev.config.load_test.workers == 4
    assert container(dev, workers)["Command"] == [
        "locust", "-f", "loadtests/locust/locustfile.py", "--worker", "--master-host",
        "master.loadtest.sensor-dev.internal", "--master-port", "5557",
    ]
    assert dev.config.load_test.spot
    assert workers["CapacityProviderStrategy"] == [{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]
    assert "LaunchType" not in workers
    associations = only(dev.load_test, "AWS::ECS::ClusterCapacityProviderAssociations")["Properties"]
    assert set(associations["CapacityProviders"]) == {"FARGATE", "FARGATE_SPOT"}
    cluster = only(dev.load_test, "AWS::ECS::Cluster")["Properties"]
    assert {"Name": "containerInsights", "Value": "enhanced"} in cluster["ClusterSettings"]


def test_tasks_get_the_client_credentials_from_secrets_manager_and_a_read_only_root(dev: Synthesized) -> None:
    secret = logical_id(dev, "AWS::SecretsManager::Secret", "LocustClientSecret")
    for name in ("master", "workers"):
        definition = container(dev, ecs_service(dev, name))
        assert definition["ReadonlyRootFilesystem"] is True
        assert {s["Name"] for s in definition["Secrets"]} == {"LOADTEST_CLIENT_ID", "LOADTEST_CLIENT_SECRET"}
        assert all(secret in json.dumps(s["ValueFrom"]) for s in definition["Secrets"])
        # The one host a run may target (loadtests/locust/target_guard.py), the service's certificate name.
        assert definition["Environment"] == [{"Name": "LOADTEST_TARGET_URL", "Value": f"https://{dev.config.domain_name}"}]


# --- security groups, exactly ---------------------------------------------------------------------
def test_security_groups_are_exactly_as_narrow_as_designed(dev: Synthesized) -> None:
    ui, master, workers = (security_group(dev, p) for p in ("UiSecurityGroup", "LocustMasterSecurityGroup",
                                                              "LocustWorkerSecurityGroup"))
    assert ingress_rules(dev, master) == {(5557, 5557, workers), (8089, 8089, ui)}
    assert ingress_rules(dev, workers) == set()
    assert ingress_rules(dev, ui) == {(443, 443, dev.config.network.vpc_cidr)}
    # ALB: to the web UI, and to Cognito's token endpoint (the authenticate action needs it).
    assert egress_rules(dev, ui) == {(8089, 8089, "tcp", master), (443, 443, "tcp", "0.0.0.0/0")}
    # The Locust tasks: no allow-all egress; the target's port (HTTPS), and workers to the master.
    assert egress_rules(dev, master) == {(443, 443, "tcp", "0.0.0.0/0")}
    assert egress_rules(dev, workers) == {(443, 443, "tcp", "0.0.0.0/0"), (5557, 5557, "tcp", master)}


# --- results bucket and who may write it --------------------------------------------------------
def test_results_bucket_is_encrypted_private_tls_only_logged_and_expires(dev: Synthesized) -> None:
    (bucket_id,) = [k for k in resources(dev, "AWS::S3::Bucket") if k.startswith("Results") and "AccessLogs" not in k]
    bucket = resources(dev, "AWS::S3::Bucket")[bucket_id]["Properties"]
    assert flatten(bucket["BucketName"]) == "sensor-dev-loadtest-<token>-eu-west-1"
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {
        "Ref": logical_id(dev, "AWS::S3::Bucket", "ResultsAccessLogs")}
    (lifecycle,) = bucket["LifecycleConfiguration"]["Rules"]
    assert lifecycle["ExpirationInDays"] == dev.config.load_test.results_retention_days == 30
    policies = [p["Properties"] for p in resources(dev, "AWS::S3::BucketPolicy").values()
                if p["Properties"]["Bucket"] == {"Ref": bucket_id}]
    statements = policies[0]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in statements)


def test_only_the_master_task_role_may_write_and_only_under_the_results_prefix(dev: Synthesized) -> None:
    task_roles = {
        name: container_task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
        for name, container_task in resources(dev, "AWS::ECS::TaskDefinition").items()
    }
    master_role = next(role for task, role in task_roles.items() if task.startswith("LocustMasterTask"))
    worker_role = next(role for task, role in task_roles.items() if task.startswith("LocustWorkerTask"))
    by_role: dict[str, list[dict]] = {}
    for policy in resources(dev, "AWS::IAM::Policy").values():
        for role in policy["Properties"]["Roles"]:
            by_role.setdefault(role["Ref"], []).extend(policy["Properties"]["PolicyDocument"]["Statement"])
    assert worker_role not in by_role
    (statement,) = by_role[master_role]
    assert sorted(statement["Action"]) == ["s3:AbortMultipartUpload", "s3:PutObject"]
    assert flatten(statement["Resource"]) == "arn:<token>:s3:::sensor-dev-loadtest-<token>-eu-west-1/runs/*"


# --- WAF allow-list: the NAT gateways the workers leave through ----------------------------------
def _nat_eip_outputs(env: Synthesized) -> list[str]:
    return sorted(name for name, output in env.network.to_json()["Outputs"].items()
                  if "EIP" in name and "PublicIp" in json.dumps(output))


def _ip_set_addresses(env: Synthesized) -> list[Any]:
    return only(env.service, "AWS::WAFv2::IPSet")["Properties"]["Addresses"]


def test_waf_allow_list_holds_the_nat_gateway_addresses_while_enabled(
    dev: Synthesized, prod: Synthesized, prod_with_load_test: Synthesized
) -> None:
    for env, static in ((dev, []), (prod_with_load_test, ["198.51.100.0/24"])):
        addresses = _ip_set_addresses(env)
        assert addresses[: len(static)] == static
        generators = addresses[len(static):]
        assert len(generators) == env.config.network.nat_gateways
        for address in generators:
            prefix, suffix = address["Fn::Join"][1]
            assert suffix == "/32" and "EIP" in json.dumps(prefix) and "PublicIp" in json.dumps(prefix)
    assert _ip_set_addresses(prod) == ["198.51.100.0/24"]  # disabled: the configured CIDRs only


def test_prod_variant_uses_the_environment_certificate_and_on_demand_workers(prod_with_load_test) -> None:
    env = prod_with_load_test
    listener = only(env.load_test, "AWS::ElasticLoadBalancingV2::Listener")["Properties"]
    assert listener["Certificates"] == [{"CertificateArn": env.config.certificate_arn}]
    workers = ecs_service(env, "workers")
    assert workers["DesiredCount"] == 10 and "CapacityProviderStrategy" not in workers
    assert MASTER_COMMAND.search(flatten(container(env, ecs_service(env, "master"))["Command"])).group(1) == "10"
    # The service's certificate name, which the users verify TLS against.
    assert f"--host https://{env.config.domain_name} " in flatten(container(env, ecs_service(env, "master"))["Command"])


def test_target_url_override_replaces_the_alb_url(synth_variant: Callable[..., Synthesized]) -> None:
    env = synth_variant("dev", lambda raw: raw["load_test"].update(target_url="https://api.example.com", spot=False))
    command = flatten(container(env, ecs_service(env, "master"))["Command"])
    assert "--host https://api.example.com " in command
    assert "CapacityProviderStrategy" not in ecs_service(env, "workers")


# --- configuration ----------------------------------------------------------------------------------
def test_committed_settings_and_defaults() -> None:
    environments = committed_context()["environments"]
    dev = load_environment(environments, "dev").load_test
    prod = load_environment(environments, "prod").load_test
    assert (dev.enabled, dev.workers, dev.spot, dev.results_retention_days) == (True, 4, True, 30)
    assert (prod.enabled, prod.workers, prod.spot) == (False, 10, False)
    raw = committed_environment("prod")
    del raw["load_test"]
    defaults = load_environment({"prod": raw}, "prod").load_test
    assert defaults.enabled is False  # opt-in: running workers cost money and relax the WAF rate limit
    assert (defaults.workers, defaults.profile, defaults.client_id) == (4, "benchmark_1000", "loadtest")


def test_committed_profiles_exist_in_the_locust_suite() -> None:
    # In a subprocess: importing the suite imports locust, which monkey-patches the interpreter.
    listed = subprocess.run(
        [sys.executable, "-c", "from loadtests.locust.profiles import PROFILES; print(' '.join(PROFILES))"],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT,
    ).stdout.split()
    for name in ("dev", "prod"):
        assert load_environment(committed_context()["environments"], name).load_test.profile in listed


def _rejected(name: str, mutate: Callable[[dict[str, Any]], None]) -> str:
    raw = committed_environment(name)
    mutate(raw)
    with pytest.raises(ConfigError) as caught:
        load_environment({name: raw}, name)
    return str(caught.value)


@pytest.mark.parametrize(
    ("mutate", "key", "rule"),
    [
        pytest.param(lambda lt: lt.update(worker=3), "load_test.worker", "unknown key", id="unknown key"),
        pytest.param(lambda lt: lt.update(workers=0), "load_test.workers", "greater than or equal to 1",
                     id="no workers"),
        pytest.param(lambda lt: lt.update(workers="4"), "load_test.workers", "valid integer", id="workers as text"),
        pytest.param(lambda lt: lt.update(spot="yes"), "load_test.spot", "valid boolean", id="spot as text"),
        pytest.param(lambda lt: lt.update(worker_cpu=300), "load_test", "worker_cpu must be one of [256, 512",
                     id="worker cpu not a Fargate size"),
        pytest.param(lambda lt: lt.update(master_cpu=256, master_memory_mib=4096), "load_test",
                     "master_memory_mib 4096 is not a valid Fargate size for cpu 256", id="invalid master pair"),
        pytest.param(lambda lt: lt.update(certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/abc"),
                     "load_test.certificate_arn", "must be in region 'eu-west-1'", id="certificate in another region"),
        pytest.param(lambda lt: lt.update(certificate_arn="not-an-arn"), "load_test.certificate_arn",
                     "ACM certificate ARN", id="certificate not an ARN"),
        pytest.param(lambda lt: lt.update(ui_allowed_cidrs=["10.0.0.0/8", "office"]), "load_test.ui_allowed_cidrs",
                     "entry 1 ('office')", id="bad UI CIDR"),
        pytest.param(lambda lt: lt.update(target_url="api.example.com"), "load_test.target_url",
                     "should match pattern", id="target without scheme"),
        pytest.param(lambda lt: lt.update(ui_domain_name="Load Test"), "load_test.ui_domain_name",
                     "should match pattern", id="bad UI domain"),
        pytest.param(lambda lt: lt.update(results_retention_days=0), "load_test.results_retention_days",
                     "greater than or equal to 1", id="no retention"),
        pytest.param(lambda lt: lt.update(export_interval_seconds=5), "load_test.export_interval_seconds",
                     "greater than or equal to 10", id="export too often"),
    ],
)
def test_bad_load_test_settings_name_the_key(mutate: Callable[[dict[str, Any]], None], key: str, rule: str) -> None:
    message = _rejected("dev", lambda raw: mutate(raw["load_test"]))
    assert f"environments.dev.{key}" in message and rule in message


def test_enabled_without_any_certificate_is_refused() -> None:
    def no_certificates(raw: dict[str, Any]) -> None:
        raw.pop("certificate_arn")
        raw.pop("domain_name")
        raw["allow_plain_http"] = True  # the environment's own listeners may opt out; the UI may not
        raw["load_test"].pop("certificate_arn")

    message = _rejected("dev", no_certificates)
    assert "environments.dev.load_test.certificate_arn" in message and "is required when load_test.enabled" in message


def test_disabled_needs_no_certificate() -> None:
    raw = committed_environment("dev")
    raw["load_test"] = {"enabled": False}
    assert load_environment({"dev": raw}, "dev").load_test.enabled is False


# --- the image ----------------------------------------------------------------------------------------
def test_image_pins_match_constraints() -> None:
    requirements = (REPO_ROOT / "loadtests" / "requirements.txt").read_text()
    pins = dict(re.findall(r"\b([a-z0-9_-]+)==([0-9][^\s]*)", requirements))
    assert {"locust", "boto3", "httpx"} <= set(pins)
    constraints = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (REPO_ROOT / "constraints.txt").read_text(),
                                  flags=re.MULTILINE))
    assert {name: constraints.get(name) for name in pins} == pins
