"""Security posture of every synthesized template, both environments: no plaintext secrets, every
data store encrypted, TLS on the listeners where the environment has a certificate, IAM wildcards only
where acknowledged, and security groups exactly as narrow as the design draws them.

The stacks come from the cloud assembly the session synth wrote (not from a list of stack names), so
a new stack is checked as soon as it is synthesized. Each check is a function from templates to a list
of problems; a negative test per check feeds it a small hand-made fragment that it must reject.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest
from aws_cdk import cx_api
from aws_cdk.assertions import Annotations, Match

from environments.config import EnvironmentConfig
from tests.infra.conftest import Synthesized
from tests.infra.test_nag import nag_report

# ---------------------------------------------------------------------------------------------------
# The synthesized stacks, with each resource's construct path (for messages, the nag report and the
# security-group matrix).


@dataclass(frozen=True)
class StackTemplate:
    name: str
    template: dict[str, Any]
    # logical id -> construct path below the environment prefix, e.g. "Data/Database/SecurityGroup"
    paths: dict[str, str]

    @property
    def resources(self) -> dict[str, Any]:
        return self.template.get("Resources", {})

    def path(self, logical_id: str) -> str:
        return self.paths.get(logical_id, logical_id)

    def where(self, logical_id: str) -> str:
        """How a problem names the resource: stack and construct path."""
        return f"{self.name}/{self.path(logical_id)}"


def _short_path(construct_path: str, prefix: str) -> str:
    return construct_path.lstrip("/").removeprefix(prefix).removesuffix("/Resource")


@functools.cache
def _load_assembly(outdir: str, prefix: str) -> dict[str, StackTemplate]:
    stacks = {}
    for artifact in cx_api.CloudAssembly(outdir).stacks_recursively:
        paths = {
            entry.data: _short_path(entry.path, prefix)
            for entry in artifact.find_metadata_by_type("aws:cdk:logicalId")
        }
        stacks[artifact.stack_name] = StackTemplate(artifact.stack_name, artifact.template, paths)
    return stacks


def synthesized_stacks(env: Synthesized) -> dict[str, StackTemplate]:
    """Every stack template in the environment's cloud assembly, by stack name."""
    return _load_assembly(str(env.outdir), f"Sensor-{env.config.name}-")


def fragment(resources: dict[str, Any]) -> dict[str, StackTemplate]:
    """A hand-made one-stack 'assembly' for the negative tests (construct paths = logical ids)."""
    return {"Probe": StackTemplate("Probe", {"Resources": resources}, {lid: lid for lid in resources})}


def each_resource(stacks: dict[str, StackTemplate]) -> Iterator[tuple[StackTemplate, str, dict[str, Any]]]:
    for stack in stacks.values():
        for logical_id, resource in stack.resources.items():
            yield stack, logical_id, resource


def _join(argument: list[Any], text: Callable[[Any], str | None]) -> str | None:
    separator, parts = argument
    texts = [text(part) for part in parts] if isinstance(parts, list) else [None]
    return None if None in texts else separator.join(texts)


def _attribute(argument: str | list[str]) -> str:
    return ".".join(argument) if isinstance(argument, list) else argument


def as_text(value: Any) -> str | None:
    """A value as the text CloudFormation would produce, references written the way cdk-nag writes
    them (`<Logical.Attr>`, `<AWS::AccountId>`); None for structures (objects and lists)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    if not (isinstance(value, dict) and len(value) == 1):
        return None
    ((function, argument),) = value.items()
    intrinsics: dict[str, Callable[[Any], str | None]] = {
        "Ref": lambda name: f"<{name}>",
        "Fn::GetAtt": lambda target: f"<{_attribute(target)}>",
        "Fn::Join": lambda join: _join(join, as_text),
        "Fn::Sub": lambda sub: sub if isinstance(sub, str) else sub[0],
    }
    if function in intrinsics:
        return intrinsics[function](argument)
    return f"<{function}>" if function.startswith("Fn::") else None


# ---------------------------------------------------------------------------------------------------
# 1. No plaintext secrets. Judged on values, not only names: a secret-like name may hold a number
# (SENSOR_TOKEN_TTL_SECONDS=3600), a boolean, or a reference (an ARN, a `{{resolve:secretsmanager:}}`
# dynamic reference, a Ref/GetAtt); any other literal under such a name is a plaintext secret.
# Secrets reach containers as ECS `Secrets` entries (Name + ValueFrom), which are never literals.

SECRET_NAME = re.compile(r"password|passwd|secret|token|api[_-]?key|private[_-]?key", re.IGNORECASE)
NOT_SECRET_MATERIAL = re.compile(r"^(?:|\d+(?:\.\d+)?|true|false)$", re.IGNORECASE)
REFERENCE = re.compile(r"^(?:arn:|<|\{\{resolve:(?:secretsmanager|ssm-secure):)")
# Material that is a secret whatever its name says.
SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "PEM block": re.compile(r"-----BEGIN [A-Z0-9 ]+-----"),
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@<>]+:[^/\s@<>]+@"),
    "JSON web token": re.compile(r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}"),
}


def _json_document(text: str) -> Any | None:
    """The object or list a string literal encodes (secret templates), else None."""
    if text[:1] not in "[{":
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict | list) else None


def _named_values(node: Any, where: str) -> Iterator[tuple[str, str, Any]]:
    """(location, name, value) for every setting: object keys, Name/Key + Value pairs (ECS
    environment, tags), list items (nameless), and the keys inside string literals that are JSON."""
    if isinstance(node, dict):
        children = node.items()
    elif isinstance(node, list):
        children = ((f"[{index}]", item) for index, item in enumerate(node))
    else:
        return
    for key, value in children:
        location = f"{where}.{key}" if isinstance(node, dict) else f"{where}{key}"
        yield location, key if isinstance(node, dict) else "", value
        if isinstance(node, list) and isinstance(value, dict) and "Value" in value:
            name = value.get("Name", value.get("Key"))
            if isinstance(name, str):
                yield location, name, value["Value"]
        document = _json_document(value) if isinstance(value, str) else None
        if document is not None:
            yield from _named_values(document, f"{location}<json>")
        elif as_text(value) is None:
            yield from _named_values(value, location)


def secret_problems(stacks: dict[str, StackTemplate]) -> list[str]:
    problems = []
    for stack in stacks.values():
        named = list(_named_values(stack.template, stack.name))
        named += [
            (f"{stack.name}.Parameters.{name}.Default", name, parameter["Default"])
            for name, parameter in stack.template.get("Parameters", {}).items()
            if "Default" in parameter
        ]
        for where, name, value in named:
            text = as_text(value)
            if text is None:
                continue
            for kind, pattern in SECRET_PATTERNS.items():
                if pattern.search(text):
                    problems.append(f"{where}: {kind} in the template")
            if isinstance(value, str) and _json_document(value) is not None:
                continue  # judged by its own keys (which _named_values yields)
            if (
                SECRET_NAME.search(name)
                and not NOT_SECRET_MATERIAL.match(text)
                and not REFERENCE.match(text)
            ):
                # The length only: the report must not repeat the secret.
                problems.append(f"{where}: {name!r} holds a {len(text)}-character literal; use Secrets Manager")
    return sorted(set(problems))


def test_no_plaintext_secrets(each_env: Synthesized) -> None:
    stacks = synthesized_stacks(each_env)
    assert secret_problems(stacks) == []
    # The scan reaches what matters: the database password, container and function environments,
    # and the keys inside generated-secret templates.
    names = {name for stack in stacks.values() for _, name, _ in _named_values(stack.template, stack.name)}
    assert {"MasterUserPassword", "DB_SECRET_ARN", "SENSOR_DB_SSLMODE", "username"} <= names


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ({"Type": "AWS::Lambda::Function", "Properties": {"Environment": {"Variables": {"DB_PASSWORD": "hunter2!"}}}},
         "'DB_PASSWORD' holds a 8-character literal"),
        ({"Type": "AWS::ECS::TaskDefinition", "Properties": {"ContainerDefinitions": [
            {"Environment": [{"Name": "SENSOR_API_KEY", "Value": "k-123456"}]}]}}, "'SENSOR_API_KEY' holds"),
        ({"Type": "AWS::SecretsManager::Secret", "Properties": {"SecretString": '{"password": "hunter2"}'}},
         "'password' holds a"),
        ({"Type": "AWS::SecretsManager::Secret", "Properties": {"SecretString": "plain-value"}},
         "'SecretString' holds a"),
        ({"Type": "AWS::Lambda::Function", "Properties": {"Description": "key AKIAIOSFODNN7EXAMPLE"}},
         "AWS access key id"),
        ({"Type": "AWS::EC2::Instance", "Properties": {"UserData": {"Fn::Join": ["", [
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE", {"Ref": "AWS::Region"}]]}}}, "PEM block"),
        ({"Type": "AWS::Lambda::Function", "Properties": {"Environment": {"Variables": {
            "DATABASE_URL": "postgresql://admin:hunter2@db:5432/sensors"}}}}, "credentials in a URL"),
    ],
)
def test_secret_check_catches_plaintext(resource: dict, expected: str) -> None:
    problems = secret_problems(fragment({"Probe": resource}))
    assert any(expected in problem for problem in problems), problems


def test_secret_check_accepts_references_numbers_and_empty_documents() -> None:
    resources = {
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Environment": {"Variables": {
            "SENSOR_TOKEN_TTL_SECONDS": "3600",
            "SMOKE_CLIENT_SECRET_ARN": {"Ref": "Smoke"},
            "JWT_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:jwt",
        }}}},
        "Db": {"Type": "AWS::RDS::DBInstance", "Properties": {"MasterUserPassword": {"Fn::Join": ["", [
            "{{resolve:secretsmanager:", {"Ref": "Credentials"}, ":SecretString:password::}}"]]}}},
        "Clients": {"Type": "AWS::SecretsManager::Secret", "Properties": {"SecretString": "[]",
            "GenerateSecretString": {"SecretStringTemplate": '{"username": "admin"}', "PasswordLength": 30}}},
    }
    assert secret_problems(fragment(resources)) == []


# ---------------------------------------------------------------------------------------------------
# 2. Every data store encrypted at rest. Every resource type in the templates must be classified:
# a data store with its check, a store the service always encrypts (with the reason), or not a data
# store. An unclassified type fails, so a new kind of store cannot slip in unchecked.

Check = Callable[[dict[str, Any], dict[str, Any]], list[str]]  # (properties, template resources)


def _rds_instance(properties: dict[str, Any], resources: dict[str, Any]) -> list[str]:
    if "SourceDBInstanceIdentifier" in properties:
        # A replica inherits its source's encryption (CloudFormation rejects StorageEncrypted with
        # SourceDBInstanceIdentifier): the source must be an encrypted instance of the same template.
        sources = re.findall(r"<([A-Za-z0-9]+)>", as_text(properties["SourceDBInstanceIdentifier"]) or "")
        encrypted = [
            source for source in sources
            if resources.get(source, {}).get("Properties", {}).get("StorageEncrypted") is True
        ]
        return [] if encrypted else ["read replica of a source that is not an encrypted instance of this stack"]
    return [] if properties.get("StorageEncrypted") is True else ["StorageEncrypted is not true"]


def _rds_cluster(properties: dict[str, Any], _: dict[str, Any]) -> list[str]:
    return [] if properties.get("StorageEncrypted") is True else ["StorageEncrypted is not true"]


def _msk_cluster(properties: dict[str, Any], _: dict[str, Any]) -> list[str]:
    encryption = properties.get("EncryptionInfo", {})
    # In transit: see transport_problems.
    if "DataVolumeKMSKeyId" in encryption.get("EncryptionAtRest", {}):
        return []
    return ["no EncryptionAtRest.DataVolumeKMSKeyId (customer-managed key)"]


def _s3_bucket(properties: dict[str, Any], _: dict[str, Any]) -> list[str]:
    rules = properties.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
    algorithms = {rule.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for rule in rules}
    return [] if algorithms and algorithms <= {"AES256", "aws:kms", "aws:kms:dsse"} else ["no BucketEncryption"]


def _sqs_queue(properties: dict[str, Any], _: dict[str, Any]) -> list[str]:
    encrypted = "KmsMasterKeyId" in properties or properties.get("SqsManagedSseEnabled") is True
    return [] if encrypted else ["neither KmsMasterKeyId nor SqsManagedSseEnabled"]


def _sns_topic(properties: dict[str, Any], _: dict[str, Any]) -> list[str]:
    return [] if "KmsMasterKeyId" in properties else ["no KmsMasterKeyId"]


def _efs(properties: dict[str, Any], _: dict[str, Any]) -> list[str]:
    return [] if properties.get("Encrypted") is True else ["Encrypted is not true"]


def _serverless_cache(properties: dict[str, Any], _: dict[str, Any]) -> list[str]:
    # Serverless caches always encrypt at rest and in transit; the platform's own key is required.
    return [] if "KmsKeyId" in properties else ["no KmsKeyId (customer-managed key)"]


DATA_STORES: dict[str, Check] = {
    # The AWS-managed aws/rds key is enough: a customer key would only add key-policy control.
    "AWS::RDS::DBInstance": _rds_instance,
    "AWS::RDS::DBCluster": _rds_cluster,
    "AWS::MSK::Cluster": _msk_cluster,
    "AWS::S3::Bucket": _s3_bucket,
    "AWS::SQS::Queue": _sqs_queue,
    "AWS::SNS::Topic": _sns_topic,
    "AWS::EFS::FileSystem": _efs,
    "AWS::ElastiCache::ServerlessCache": _serverless_cache,
}
# Stores that cannot be unencrypted: nothing to check, the reason is on record.
ENCRYPTED_BY_THE_SERVICE = {
    "AWS::Logs::LogGroup": "CloudWatch Logs encrypts every log group at rest with service keys; a KMS "
    "key (KmsKeyId) is optional and not used: no log carries secrets, and readings go to S3.",
    "AWS::SecretsManager::Secret": "Secrets Manager always encrypts, with aws/secretsmanager unless "
    "KmsKeyId names another key.",
    "AWS::MSK::Topic": "Stored on the cluster's brokers, whose volumes the cluster check covers.",
    "AWS::Glue::Database": "Schema only; the data is in the encrypted lake bucket. Data Catalog "
    "encryption is an account-wide setting this repository does not own.",
    "AWS::Glue::Table": "Schema only (partition projection over the encrypted lake bucket).",
    "AWS::DynamoDB::Table": "DynamoDB encrypts every table at rest (AWS owned key by default).",
    "AWS::Cognito::UserPool": "Cognito encrypts user pool data at rest.",
}
# Not data stores (configuration, compute, networking, permissions), or holding only settings that
# the service encrypts anyway (Lambda environment variables, Fargate ephemeral storage).
NOT_DATA_STORES = frozenset({
    "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Integration", "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Stage",
    "AWS::ApplicationAutoScaling::ScalableTarget", "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm", "AWS::CloudWatch::Dashboard",
    "AWS::Cognito::UserPoolClient", "AWS::Cognito::UserPoolDomain",
    "AWS::CodeDeploy::Application", "AWS::CodeDeploy::DeploymentGroup",
    "AWS::EC2::EIP", "AWS::EC2::FlowLog", "AWS::EC2::InternetGateway", "AWS::EC2::NatGateway",
    "AWS::EC2::Route", "AWS::EC2::RouteTable", "AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupEgress",
    "AWS::EC2::SecurityGroupIngress", "AWS::EC2::Subnet", "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::VPC", "AWS::EC2::VPCEndpoint", "AWS::EC2::VPCGatewayAttachment",
    "AWS::ECS::Cluster", "AWS::ECS::ClusterCapacityProviderAssociations", "AWS::ECS::Service",
    "AWS::ECS::TaskDefinition",
    "AWS::ElastiCache::User", "AWS::ElastiCache::UserGroup",
    "AWS::ElasticLoadBalancingV2::Listener", "AWS::ElasticLoadBalancingV2::ListenerRule",
    "AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::ElasticLoadBalancingV2::TargetGroup",
    "AWS::IAM::Policy", "AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::KMS::Key", "AWS::KMS::Alias",
    "AWS::Lambda::Alias", "AWS::Lambda::EventSourceMapping", "AWS::Lambda::Function",
    "AWS::Lambda::Permission", "AWS::Lambda::Version",
    "AWS::RDS::DBParameterGroup", "AWS::RDS::DBSubnetGroup",
    "AWS::S3::BucketPolicy", "AWS::SNS::Subscription", "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy",
    "AWS::SecretsManager::ResourcePolicy", "AWS::SecretsManager::RotationSchedule",
    "AWS::SecretsManager::SecretTargetAttachment",
    # The secret rotation function from the Serverless Application Repository (a nested stack of a
    # Lambda function, its role and permissions; no store).
    "AWS::Serverless::Application",
    "AWS::ServiceDiscovery::PrivateDnsNamespace", "AWS::ServiceDiscovery::Service",
    "AWS::WAFv2::IPSet", "AWS::WAFv2::LoggingConfiguration", "AWS::WAFv2::WebACL",
    "AWS::WAFv2::WebACLAssociation",
    "AWS::CDK::Metadata", "Custom::VpcRestrictDefaultSG",
})


def encryption_problems(stacks: dict[str, StackTemplate]) -> list[str]:
    problems = []
    for stack, logical_id, resource in each_resource(stacks):
        kind = resource["Type"]
        where = f"{stack.where(logical_id)} ({kind})"
        if kind in DATA_STORES:
            problems += [f"{where}: {problem}" for problem in DATA_STORES[kind](
                resource.get("Properties", {}), stack.resources
            )]
        elif kind not in ENCRYPTED_BY_THE_SERVICE and kind not in NOT_DATA_STORES:
            problems.append(
                f"{where}: unclassified resource type; add it to DATA_STORES (with its encryption check), "
                "ENCRYPTED_BY_THE_SERVICE (with the reason) or NOT_DATA_STORES"
            )
    return problems


def test_every_data_store_is_encrypted(each_env: Synthesized) -> None:
    assert encryption_problems(synthesized_stacks(each_env)) == []


def test_the_stores_the_design_has_are_among_those_checked(each_env: Synthesized) -> None:
    present = {resource["Type"] for _, _, resource in each_resource(synthesized_stacks(each_env))}
    assert {"AWS::RDS::DBInstance", "AWS::MSK::Cluster", "AWS::S3::Bucket", "AWS::SQS::Queue",
            "AWS::SNS::Topic"} <= present & set(DATA_STORES)


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"Db": {"Type": "AWS::RDS::DBInstance", "Properties": {"Engine": "postgres"}}}, "StorageEncrypted"),
        ({"Db": {"Type": "AWS::RDS::DBInstance", "Properties": {"StorageEncrypted": False}},
          "Replica": {"Type": "AWS::RDS::DBInstance", "Properties": {"SourceDBInstanceIdentifier": {"Ref": "Db"}}}},
         "read replica"),
        ({"Msk": {"Type": "AWS::MSK::Cluster", "Properties": {}}}, "DataVolumeKMSKeyId"),
        ({"Lake": {"Type": "AWS::S3::Bucket", "Properties": {}}}, "no BucketEncryption"),
        ({"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"SqsManagedSseEnabled": False}}}, "neither"),
        ({"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t"}}}, "KmsMasterKeyId"),
        ({"Docs": {"Type": "AWS::DocDB::DBCluster", "Properties": {}}}, "unclassified resource type"),
    ],
)
def test_encryption_check_catches_unencrypted_stores(resources: dict, expected: str) -> None:
    problems = encryption_problems(fragment(resources))
    assert any(expected in problem for problem in problems), problems


# ---------------------------------------------------------------------------------------------------
# References across stacks: a value's text with every reference replaced by `<construct path>` of the
# resource it names, following Fn::GetStackOutput / Fn::ImportValue to the stack that owns it.


def resolve(stacks: dict[str, StackTemplate], stack_name: str, value: Any) -> str:
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        follow = {
            "Ref": _resolve_ref, "Fn::GetAtt": _resolve_attribute, "Fn::GetStackOutput": _resolve_output,
            "Fn::ImportValue": _resolve_import, "Fn::Join": _resolve_join,
        }.get(function)
        if follow:
            return follow(stacks, stack_name, argument)
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, sort_keys=True)


def _resolve_ref(stacks: dict[str, StackTemplate], stack_name: str, name: str) -> str:
    stack = stacks[stack_name]
    return f"<{stack.path(name)}>" if name in stack.resources else f"<{name}>"


def _resolve_attribute(stacks: dict[str, StackTemplate], stack_name: str, target: str | list[str]) -> str:
    logical_id, attribute = _attribute(target).split(".", 1)
    path = stacks[stack_name].path(logical_id)
    # A security group's GroupId stands for the group itself.
    return f"<{path}>" if attribute == "GroupId" else f"<{path}.{attribute}>"


def _resolve_output(stacks: dict[str, StackTemplate], _: str, output: dict[str, str]) -> str:
    owner = output["StackName"]
    return resolve(stacks, owner, stacks[owner].template["Outputs"][output["OutputName"]]["Value"])


def _resolve_import(stacks: dict[str, StackTemplate], stack_name: str, name: Any) -> str:
    for owner in stacks.values():
        for output in owner.template.get("Outputs", {}).values():
            if output.get("Export", {}).get("Name") == name:
                return resolve(stacks, owner.name, output["Value"])
    return f"<import {name}>"


def _resolve_join(stacks: dict[str, StackTemplate], stack_name: str, join: list[Any]) -> str:
    return _join(join, lambda part: resolve(stacks, stack_name, part)) or "?"


def resources_by_path(stacks: dict[str, StackTemplate]) -> dict[str, dict[str, Any]]:
    return {f"<{stack.path(lid)}>": resource for stack, lid, resource in each_resource(stacks)}


# ---------------------------------------------------------------------------------------------------
# 3. TLS. Where the environment has a certificate (production must: config enforces it) every ALB
# listener is HTTPS with a TLS 1.2+ policy, or plain HTTP whose only action redirects to HTTPS, and
# no listener rule forwards from a plain HTTP listener. Without one (dev) the service listeners are
# plain HTTP, as config allows outside production. In every environment MSK takes TLS only from
# clients and RDS refuses unencrypted connections. (HTTP APIs of API Gateway are HTTPS-only.)

LISTENER = "AWS::ElasticLoadBalancingV2::Listener"
# Policies whose minimum is TLS 1.2 or 1.3; CloudFormation's default (no SslPolicy) is
# ELBSecurityPolicy-2016-08, which accepts TLS 1.0.
TLS12_POLICY = re.compile(r"^ELBSecurityPolicy-(?:TLS13-1-[23]|TLS-1-2|FS-1-2)-")


def _only_redirects_to_https(actions: list[dict[str, Any]]) -> bool:
    return (
        len(actions) == 1
        and actions[0].get("Type") == "redirect"
        and actions[0].get("RedirectConfig", {}).get("Protocol") == "HTTPS"
    )


HSTS_ATTRIBUTE = "routing.http.response.strict_transport_security.header_value"


def listener_problems(stacks: dict[str, StackTemplate], *, plain_http_allowed: bool) -> list[str]:
    problems = []
    by_path = resources_by_path(stacks)
    for stack, logical_id, resource in each_resource(stacks):
        properties = resource.get("Properties", {})
        where = stack.where(logical_id)
        if resource["Type"] == LISTENER:
            protocol = properties.get("Protocol")
            if protocol == "HTTPS":
                attributes = {a.get("Key"): a.get("Value") for a in properties.get("ListenerAttributes", [])}
                if not str(attributes.get(HSTS_ATTRIBUTE, "")).startswith("max-age="):
                    problems.append(f"{where}: HTTPS listener without HSTS")
                policy = properties.get("SslPolicy", "")
                if not TLS12_POLICY.match(policy):
                    problems.append(f"{where}: SslPolicy {policy or '(default 2016-08)'!r} accepts TLS < 1.2")
                if not properties.get("Certificates"):
                    problems.append(f"{where}: HTTPS listener without a certificate")
            elif protocol == "HTTP":
                if not plain_http_allowed and not _only_redirects_to_https(properties.get("DefaultActions", [])):
                    problems.append(f"{where}: plain HTTP listener on {properties.get('Port')} serves traffic")
            else:
                problems.append(f"{where}: listener protocol {protocol!r} is not part of the design")
        elif resource["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule" and not plain_http_allowed:
            listener = by_path.get(resolve(stacks, stack.name, properties.get("ListenerArn")), {})
            if listener.get("Properties", {}).get("Protocol") != "HTTPS":
                problems.append(f"{where}: rule on a listener that is not HTTPS")
    return problems


def transport_problems(stacks: dict[str, StackTemplate]) -> list[str]:
    """MSK: TLS between clients and brokers and inside the cluster. RDS: rds.force_ssl=1 on the
    parameter group of every instance and cluster (the engine default lets plain connections in)."""
    problems = []
    by_path = resources_by_path(stacks)
    for stack, logical_id, resource in each_resource(stacks):
        properties = resource.get("Properties", {})
        where = stack.where(logical_id)
        if resource["Type"] == "AWS::MSK::Cluster":
            in_transit = properties.get("EncryptionInfo", {}).get("EncryptionInTransit", {})
            if in_transit.get("ClientBroker") != "TLS":
                problems.append(f"{where}: ClientBroker is {in_transit.get('ClientBroker')!r}, not 'TLS'")
            if in_transit.get("InCluster") is False:
                problems.append(f"{where}: InCluster encryption is off")
        group_key = {
            "AWS::RDS::DBInstance": "DBParameterGroupName", "AWS::RDS::DBCluster": "DBClusterParameterGroupName"
        }.get(resource["Type"])
        if group_key:
            group = by_path.get(resolve(stacks, stack.name, properties.get(group_key)), {})
            parameters = group.get("Properties", {}).get("Parameters", {})
            if str(parameters.get("rds.force_ssl")) != "1":
                problems.append(f"{where}: its parameter group does not set rds.force_ssl=1")
    return problems


def _listeners(env: Synthesized) -> dict[int, dict[str, Any]]:
    return {
        resource["Properties"]["Port"]: resource["Properties"]
        for _, _, resource in each_resource(synthesized_stacks(env))
        if resource["Type"] == LISTENER
    }


def test_listeners_are_tls_only_in_every_committed_environment(each_env: Synthesized) -> None:
    assert each_env.config.https and not each_env.config.allow_plain_http
    stacks = synthesized_stacks(each_env)
    assert listener_problems(stacks, plain_http_allowed=False) == []
    # The only plain HTTP listener redirects; the blue/green test listener is HTTPS too.
    listeners = _listeners(each_env)
    assert [port for port, listener in listeners.items() if listener["Protocol"] == "HTTP"] == [80]
    assert listeners[each_env.config.service.test_listener_port]["Protocol"] == "HTTPS"


def test_plain_http_needs_an_explicit_opt_out_and_synth_warns(synth_variant) -> None:
    def without_certificate(raw: dict) -> None:
        raw.pop("certificate_arn")
        raw.pop("domain_name")
        raw["allow_plain_http"] = True

    env = synth_variant("dev", without_certificate)
    assert not env.config.https and env.config.allow_plain_http
    stacks = synthesized_stacks(env)
    assert listener_problems(stacks, plain_http_allowed=True) == []  # HTTPS ones still need TLS 1.2+ and HSTS
    plain = sorted(port for port, listener in _listeners(env).items() if listener["Protocol"] == "HTTP")
    assert plain == [80, env.config.service.test_listener_port]
    assert listener_problems(stacks, plain_http_allowed=False) != []
    warnings = Annotations.from_stack(env.platform.service).find_warning("*", Match.any_value())
    assert any("allow_plain_http: true" in str(w.entry.data) for w in warnings), warnings


def test_msk_and_rds_refuse_plaintext_connections(each_env: Synthesized) -> None:
    assert transport_problems(synthesized_stacks(each_env)) == []


def _listener(**properties: Any) -> dict[str, Any]:
    return {"Type": LISTENER, "Properties": properties}


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"L": _listener(Protocol="HTTPS", Port=443, Certificates=[{"CertificateArn": "c"}])}, "(default 2016-08)"),
        ({"L": _listener(Protocol="HTTPS", Port=443, SslPolicy="ELBSecurityPolicy-TLS13-1-0-2021-06",
                         Certificates=[{"CertificateArn": "c"}])}, "accepts TLS < 1.2"),
        ({"L": _listener(Protocol="HTTPS", Port=443, SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06")},
         "without a certificate"),
        ({"L": _listener(Protocol="HTTP", Port=8443, DefaultActions=[{"Type": "forward", "TargetGroupArn": "t"}])},
         "plain HTTP listener on 8443"),
        ({"L": _listener(Protocol="HTTP", Port=80, DefaultActions=[
            {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443"}}]),
          "R": {"Type": "AWS::ElasticLoadBalancingV2::ListenerRule", "Properties": {"ListenerArn": {"Ref": "L"}}}},
         "R: rule on a listener that is not HTTPS"),
    ],
)
def test_listener_check_catches_plain_or_weak_listeners(resources: dict, expected: str) -> None:
    problems = listener_problems(fragment(resources), plain_http_allowed=False)
    assert any(expected in problem for problem in problems), problems


def test_listener_check_accepts_a_redirect_only_http_listener() -> None:
    redirect = _listener(Protocol="HTTP", Port=80, DefaultActions=[
        {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443"}}])
    assert listener_problems(fragment({"L": redirect}), plain_http_allowed=False) == []


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"Msk": {"Type": "AWS::MSK::Cluster", "Properties": {"EncryptionInfo": {
            "EncryptionInTransit": {"ClientBroker": "TLS_PLAINTEXT", "InCluster": True}}}}}, "not 'TLS'"),
        ({"Db": {"Type": "AWS::RDS::DBInstance", "Properties": {"DBParameterGroupName": {"Ref": "Params"}}},
          "Params": {"Type": "AWS::RDS::DBParameterGroup", "Properties": {"Parameters": {"rds.force_ssl": "0"}}}},
         "rds.force_ssl=1"),
        ({"Db": {"Type": "AWS::RDS::DBInstance", "Properties": {}}}, "rds.force_ssl=1"),
    ],
)
def test_transport_check_catches_plaintext_paths(resources: dict, expected: str) -> None:
    problems = transport_problems(fragment(resources))
    assert any(expected in problem for problem in problems), problems


# ---------------------------------------------------------------------------------------------------
# 4. IAM wildcards. Every wildcard an Allow statement grants (an action or resource containing `*`,
# or any NotAction/NotResource) must be on record: in identity policies (roles, policies) as an
# acknowledged cdk-nag AwsSolutions-IAM5 finding of that very construct; in resource policies (key,
# bucket, topic, queue and secret policies, which cdk-nag does not inspect) by a rule below with its
# reason. Deny statements are skipped: a wildcard there widens a denial, never a grant.

IDENTITY_POLICIES = {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role", "AWS::IAM::User",
                     "AWS::IAM::Group"}
# (resource type, principal, action) -> why a resource policy may grant this wildcard action.
RESOURCE_POLICY_WILDCARD_ACTIONS = {
    ("AWS::KMS::Key", "this account", "kms:*"): "CDK's default key policy: the account holds the key "
    "and IAM policies decide who uses it; without this statement the key could become unmanageable.",
    ("AWS::KMS::Key", "cloudwatch.amazonaws.com", "kms:GenerateDataKey*"): "CloudWatch alarms publish to "
    "the KMS-encrypted SNS topics: AWS documents kms:Decrypt + kms:GenerateDataKey* for the service.",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "Statement" in node:
            yield from _as_list(node["Statement"])
        for value in node.values():
            yield from _statements(value)
    elif isinstance(node, list):
        for item in node:
            yield from _statements(item)


def _principal(statement: dict[str, Any], account: str | None) -> str:
    principal = statement.get("Principal", {})
    if "Service" in principal:
        return " ".join(_as_list(principal["Service"]))
    text = " ".join(as_text(p) or "?" for p in _as_list(principal.get("AWS", principal)))
    accounts = "<AWS::AccountId>" + (f"|{account}" if account else "")
    return "this account" if re.fullmatch(rf"arn:(?:aws[a-z-]*|<AWS::Partition>):iam::(?:{accounts}):root", text) else text


def wildcards(statement: dict[str, Any]) -> list[str]:
    """The statement's wildcard grants, named the way cdk-nag names IAM5 findings."""
    found = [f"NotAction::{a}" for a in _as_list(statement.get("NotAction", []))]
    found += [f"NotResource::{as_text(r)}" for r in _as_list(statement.get("NotResource", []))]
    found += [f"Action::{a}" for a in _as_list(statement.get("Action", [])) if "*" in str(a)]
    resources = [as_text(r) or json.dumps(r) for r in _as_list(statement.get("Resource", []))]
    return found + [f"Resource::{r}" for r in resources if "*" in r]


def _resource_policy_allows(kind: str, properties: dict[str, Any], statement: dict, finding: str,
                            account: str | None) -> bool:
    if finding.startswith("Action::"):
        return (kind, _principal(statement, account), finding.removeprefix("Action::")) in (
            RESOURCE_POLICY_WILDCARD_ACTIONS
        )
    if kind == "AWS::KMS::Key" and finding == "Resource::*":
        return True  # In a key policy "*" means this key.
    if kind == "AWS::S3::BucketPolicy":
        # Object keys under a prefix of the policy's own bucket (log delivery): objects yet to exist.
        bucket = as_text(properties.get("Bucket")) or "?"
        return finding.startswith(f"Resource::{bucket[:-1]}.Arn>/")
    return False


def acknowledged_wildcards(env: Synthesized) -> dict[str, set[str]]:
    """Construct path -> the IAM5 findings (`Action::...`, `Resource::...`) acknowledged on it."""
    prefix = f"Sensor-{env.config.name}-"
    acknowledged: dict[str, set[str]] = {}
    for finding in nag_report(env)["suppressedViolations"]:
        rule = finding["ruleName"]
        if rule.startswith("AwsSolutions-IAM5["):
            for construct in finding["violatingConstructs"]:
                path = _short_path(construct["constructPath"], prefix)
                acknowledged.setdefault(path, set()).add(rule.removeprefix("AwsSolutions-IAM5[")[:-1])
    return acknowledged


def iam_problems(stacks: dict[str, StackTemplate], acknowledged: dict[str, set[str]],
                 account: str | None) -> list[str]:
    problems = []
    for stack, logical_id, resource in each_resource(stacks):
        path = stack.path(logical_id)
        properties = resource.get("Properties", {})
        for statement in _statements(properties):
            if statement.get("Effect") != "Allow":
                continue
            for finding in wildcards(statement):
                if resource["Type"] in IDENTITY_POLICIES:
                    allowed = finding in acknowledged.get(path, set())
                else:
                    allowed = _resource_policy_allows(resource["Type"], properties, statement, finding, account)
                if not allowed:
                    problems.append(f"{stack.name}/{path} ({resource['Type']}): {finding} is not acknowledged")
    return problems


def test_iam_wildcards_only_where_acknowledged(each_env: Synthesized) -> None:
    stacks = synthesized_stacks(each_env)
    assert iam_problems(stacks, acknowledged_wildcards(each_env), each_env.config.account) == []
    # Not vacuous: the design has wildcards (ecr:GetAuthorizationToken on "*", lake prefixes), and
    # the check saw them in the templates.
    granted = {
        (stack.paths[logical_id], finding)
        for stack, logical_id, resource in each_resource(stacks)
        if resource["Type"] in IDENTITY_POLICIES
        for statement in _statements(resource.get("Properties", {}))
        if statement.get("Effect") == "Allow"
        for finding in wildcards(statement)
    }
    assert ("Pipeline/Archiver/ExecutionRole", "Resource::*") in granted


def test_every_resource_policy_exception_is_used(dev: Synthesized, prod: Synthesized) -> None:
    used = set()
    for env in (dev, prod):
        for _, _, resource in each_resource(synthesized_stacks(env)):
            for statement in _statements(resource.get("Properties", {})):
                if statement.get("Effect") == "Allow":
                    used |= {(resource["Type"], _principal(statement, env.config.account), f.removeprefix("Action::"))
                             for f in wildcards(statement) if f.startswith("Action::")}
    assert set(RESOURCE_POLICY_WILDCARD_ACTIONS) <= used, "remove the exceptions nothing needs any more"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "AWS::IAM::Policy", "Properties": {"PolicyDocument": {"Statement": list(statements)}}}


@pytest.mark.parametrize(
    ("resources", "acknowledged", "expected"),
    [
        ({"P": _policy({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"})},
         {"P": {"Resource::arn:aws:s3:::b/*"}}, "Action::s3:* is not acknowledged"),
        ({"P": _policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})},
         {"Q": {"Resource::*"}}, "Resource::* is not acknowledged"),
        ({"P": _policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"})}, {},
         "NotAction::iam:*"),
        ({"R": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyDocument": {"Statement": [
            {"Effect": "Allow", "Action": "logs:Put*", "Resource": "arn:aws:logs:eu-west-1:1:log-group:x"}]}}]}}},
         {}, "Action::logs:Put*"),
        ({"K": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {"Statement": [
            {"Effect": "Allow", "Action": "kms:*", "Resource": "*",
             "Principal": {"AWS": "arn:aws:iam::210987654321:root"}}]}}}}, {}, "Action::kms:*"),
        ({"B": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Lake"}, "PolicyDocument": {
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Principal": {"AWS": "*"},
                           "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": ["Other", "Arn"]}, "/*"]]}}]}}}},
         {}, "Resource::<Other.Arn>/*"),
    ],
)
def test_iam_check_catches_unacknowledged_wildcards(resources: dict, acknowledged: dict, expected: str) -> None:
    problems = iam_problems(fragment(resources), acknowledged, "123456789012")
    assert any(expected in problem for problem in problems), problems


def test_iam_check_accepts_acknowledged_wildcards_and_denials() -> None:
    resources = {
        "P": _policy({"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                     {"Effect": "Deny", "Action": "s3:*", "Principal": {"AWS": "*"}, "Resource": "*"}),
        "K": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {"Statement": [
            {"Effect": "Allow", "Action": "kms:*", "Resource": "*", "Principal": {"AWS": {"Fn::Join": ["", [
                "arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]}}}]}}},
    }
    assert iam_problems(fragment(resources), {"P": {"Resource::*"}}, None) == []


# ---------------------------------------------------------------------------------------------------
# 5. Security groups as narrow as the design: every rule in the templates (inline or standalone) is
# compared both ways with the matrix below; a missing and an extra rule both fail. On top, whatever
# the matrix says: no ingress from anywhere but to the internet-facing ALB's public ports, and no
# all-protocol ingress.


class Rule(NamedTuple):
    direction: str  # "in" | "out"
    group: str  # "<construct path>" of the security group
    peer: str  # a CIDR or "<construct path>" of a security group (or an address expression)
    ports: str  # "tcp 443", "tcp 1024-65535", "all"


ANYWHERE = {"0.0.0.0/0", "::/0"}
_PEER_KEYS = {
    "in": ("CidrIp", "CidrIpv6", "SourceSecurityGroupId", "SourcePrefixListId"),
    "out": ("CidrIp", "CidrIpv6", "DestinationSecurityGroupId", "DestinationPrefixListId"),
}
# CDK's marker for "no egress at all" on a group created with allow_all_outbound=False.
_NO_EGRESS_MARKER = {"CidrIp": "255.255.255.255/32", "IpProtocol": "icmp", "FromPort": 252, "ToPort": 86}


def _rule(stacks: dict[str, StackTemplate], stack: str, direction: str, group: str, entry: dict) -> Rule:
    peer = next((resolve(stacks, stack, entry[key]) for key in _PEER_KEYS[direction] if key in entry), "?")
    protocol = str(entry.get("IpProtocol"))
    if protocol == "-1":
        ports = "all"
    else:
        low, high = (resolve(stacks, stack, entry.get(key, "?")) for key in ("FromPort", "ToPort"))
        ports = f"{protocol} {low}" if low == high else f"{protocol} {low}-{high}"
    return Rule(direction, group, peer, ports)


def security_group_rules(stacks: dict[str, StackTemplate]) -> set[Rule]:
    rules = set()
    for stack, logical_id, resource in each_resource(stacks):
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            group = f"<{stack.path(logical_id)}>"
            for direction, key in (("in", "SecurityGroupIngress"), ("out", "SecurityGroupEgress")):
                for entry in properties.get(key, []):
                    if {k: entry.get(k) for k in _NO_EGRESS_MARKER} != _NO_EGRESS_MARKER:
                        rules.add(_rule(stacks, stack.name, direction, group, entry))
        direction = {"AWS::EC2::SecurityGroupIngress": "in", "AWS::EC2::SecurityGroupEgress": "out"}.get(
            resource["Type"]
        )
        if direction:
            group = resolve(stacks, stack.name, properties["GroupId"])
            rules.add(_rule(stacks, stack.name, direction, group, properties))
    return rules


LB, APP = "<Network/SecurityGroups/LoadBalancer>", "<Network/SecurityGroups/App>"
DB, MSK = "<Data/Database/SecurityGroup>", "<Data/Streaming/SecurityGroup>"
ROTATION = "<Data/Database/RotationSingleUserSecurityGroup>"
STATE_STORE = "<Data/StateStore/SecurityGroup>"
ARCHIVER, READ_API = "<Pipeline/Archiver/SecurityGroup>", "<Pipeline/ReadApi/SecurityGroup>"
SMOKE = "<Service/DeploySmokeTest/SecurityGroup>"
UI, MASTER, WORKER = ("<LoadTest/Ui/SecurityGroup>", "<LoadTest/Locust/MasterSecurityGroup>",
                      "<LoadTest/Locust/WorkerSecurityGroup>")
ENDPOINTS = tuple(f"<Network/Network/Vpc/{name}Endpoint/SecurityGroup>"
                  for name in ("EcrApi", "EcrDocker", "Logs", "SecretsManager"))
ALL = "all"
# The database port as the rotation's rules name it (the instance's endpoint port, 5432).
DB_PORT = "<Data/Database/Instance.Endpoint.Port>"
VPC_CIDR_REFERENCE = "<Network/Network/Vpc.CidrBlock>"


def _always(_: EnvironmentConfig) -> bool:
    return True


def _https(config: EnvironmentConfig) -> bool:
    return config.https


def _read_api(config: EnvironmentConfig) -> bool:
    return config.pipeline.read_api_enabled


def _load_test(config: EnvironmentConfig) -> bool:
    return config.load_test.enabled


# Egress to anywhere on every port, where it remains, and why that is acceptable. (The app tasks
# and the rotation function had CDK's default allow-all; they now reach only what they use.)
ALLOW_ALL_EGRESS = {
    **{endpoint: "Interface endpoint network interfaces never open connections and security groups are "
       "stateful (replies need no egress rule): the rule CDK creates here can carry no traffic."
       for endpoint in ENDPOINTS},
}

# (direction, group, peer, ports, applies when, why). Placeholders in peers: {vpc} the VPC CIDR, {nat}
# each NAT gateway's Elastic IP, {ui} each CIDR allowed to the load-test UI; in ports: {container} the
# container port, {test} the blue/green test listener port.
SECURITY_GROUP_MATRIX = (
    ("in", LB, "0.0.0.0/0", "tcp 80", _always, "devices; with a certificate this listener only redirects"),
    ("in", LB, "0.0.0.0/0", "tcp 443", _https, "devices over TLS"),
    ("in", LB, "{vpc}", "tcp {test}", _always, "blue/green test listener: callers inside the VPC"),
    ("in", LB, "{nat}", "tcp {test}", _always, "the smoke-test hook reaches the ALB's public name via NAT"),
    ("out", LB, APP, "tcp {container}", _always, "ALB to the tasks, container port only"),
    ("in", APP, LB, "tcp {container}", _always, "ALB to the tasks, container port only"),
    ("out", APP, "0.0.0.0/0", "tcp 443", _always, "ECR, Logs, Secrets Manager, STS, S3 (endpoints or NAT)"),
    ("in", DB, APP, "tcp 5432", _always, "app to PostgreSQL"),
    ("out", APP, DB, "tcp 5432", _always, "app to PostgreSQL"),
    ("in", DB, ROTATION, f"tcp {DB_PORT}", _always, "secret rotation function to PostgreSQL"),
    ("out", ROTATION, DB, f"tcp {DB_PORT}", _always, "secret rotation function to PostgreSQL"),
    ("out", ROTATION, VPC_CIDR_REFERENCE, "tcp 443", _always, "rotation to the Secrets Manager endpoint"),
    ("in", DB, READ_API, "tcp 5432", _read_api, "read API to PostgreSQL"),
    ("out", READ_API, DB, "tcp 5432", _read_api, "read API to PostgreSQL"),
    ("out", READ_API, "{vpc}", "tcp 443", _read_api, "read API to the Secrets Manager endpoint"),
    ("in", MSK, APP, "tcp 9098", _always, "app (outbox relay) to MSK: IAM auth over TLS"),
    ("out", APP, MSK, "tcp 9098", _always, "app (outbox relay) to MSK: IAM auth over TLS"),
    ("in", MSK, MSK, "tcp 9098", _always, "Lambda event-source pollers run in the cluster's group"),
    ("out", MSK, MSK, "tcp 9098", _always, "Lambda event-source pollers to the brokers"),
    ("out", MSK, "0.0.0.0/0", "tcp 443", _always, "event-source pollers to the Lambda and STS APIs (NAT)"),
    ("in", STATE_STORE, APP, "tcp 6379-6380", _always, "app to the shared state store (Valkey, TLS + IAM)"),
    ("out", APP, STATE_STORE, "tcp 6379-6380", _always, "app to the shared state store (Valkey, TLS + IAM)"),
    ("out", ARCHIVER, "0.0.0.0/0", "tcp 443", _always, "archiver to S3 (gateway endpoint prefix list)"),
    ("out", SMOKE, "0.0.0.0/0", "tcp {test}", _always, "smoke-test hook to the ALB's public test listener"),
    ("out", SMOKE, "{vpc}", "tcp 443", _always, "smoke-test hook to the Secrets Manager endpoint"),
    *(("in", endpoint, "{vpc}", "tcp 443", _always, "HTTPS from inside the VPC") for endpoint in ENDPOINTS),
    *(("out", endpoint, "0.0.0.0/0", ALL, _always, ALLOW_ALL_EGRESS[endpoint]) for endpoint in ENDPOINTS),
    ("in", UI, "{vpc}", "tcp 443", _load_test, "Locust UI from inside the VPC (internal ALB)"),
    ("in", UI, "{ui}", "tcp 443", _load_test, "Locust UI from the configured networks (VPN)"),
    ("out", UI, "0.0.0.0/0", "tcp 443", _load_test, "ALB Cognito authentication calls the IdP endpoint"),
    ("out", UI, MASTER, "tcp 8089", _load_test, "UI load balancer to the Locust web UI"),
    ("in", MASTER, UI, "tcp 8089", _load_test, "UI load balancer to the Locust web UI"),
    ("in", MASTER, WORKER, "tcp 5557", _load_test, "Locust workers to the master"),
    # The Locust tasks: only the target's port (the public ALB has no fixed addresses; which host is
    # enforced by loadtests/locust/target_guard.py), HTTPS for image layers and endpoints, workers -> master.
    ("out", MASTER, "0.0.0.0/0", "tcp 443", _load_test, "target ALB (HTTPS), S3 layers, endpoints"),
    ("out", WORKER, "0.0.0.0/0", "tcp 443", _load_test, "target ALB (HTTPS), S3 layers, endpoints"),
    ("out", WORKER, MASTER, "tcp 5557", _load_test, "Locust workers to the master"),
)


def expected_security_group_rules(config: EnvironmentConfig) -> set[Rule]:
    peers = {
        "{vpc}": [config.network.vpc_cidr],
        "{nat}": [f"<Network/Network/Vpc/publicSubnet{index}/EIP.PublicIp>/32"
                  for index in range(1, config.network.nat_gateways + 1)],
        "{ui}": list(config.load_test.ui_allowed_cidrs),
    }
    ports = {"container": config.service.container_port, "test": config.service.test_listener_port}
    return {
        Rule(direction, group, expanded, port.format(**ports))
        for direction, group, peer, port, applies, _ in SECURITY_GROUP_MATRIX
        if applies(config)
        for expanded in peers.get(peer, [peer])
    }


def open_ingress_problems(rules: set[Rule], public_ports: set[str]) -> list[str]:
    """Ingress from anywhere only to the internet-facing ALB's public ports; never all protocols."""
    problems = []
    for rule in rules:
        if rule.direction != "in":
            continue
        if rule.ports == ALL:
            problems.append(f"{rule.group}: ingress on all protocols and ports from {rule.peer}")
        if rule.peer in ANYWHERE and (rule.group != LB or rule.ports not in public_ports):
            problems.append(f"{rule.group}: {rule.ports} open to {rule.peer}")
    return problems


def test_security_groups_match_the_design_matrix(each_env: Synthesized) -> None:
    actual = security_group_rules(synthesized_stacks(each_env))
    expected = expected_security_group_rules(each_env.config)
    assert sorted(expected - actual) == [], "missing rules"
    assert sorted(actual - expected) == [], "rules the design does not have"


def test_nothing_but_the_public_alb_is_open_to_the_internet(each_env: Synthesized) -> None:
    stacks = synthesized_stacks(each_env)
    ((stack, alb),) = [(stack, r) for stack, _, r in each_resource(stacks)
                       if r["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer"
                       and r["Properties"].get("Scheme") == "internet-facing"]
    assert [resolve(stacks, stack.name, group) for group in alb["Properties"]["SecurityGroups"]] == [LB]
    public = {"tcp 80", "tcp 443"} if each_env.config.https else {"tcp 80"}
    assert open_ingress_problems(security_group_rules(stacks), public) == []


def test_allow_all_egress_remains_only_where_explained(each_env: Synthesized) -> None:
    everywhere = {rule.group for rule in security_group_rules(synthesized_stacks(each_env))
                  if rule.direction == "out" and rule.ports == ALL}
    assert everywhere <= set(ALLOW_ALL_EGRESS)
    assert all(len(reason) >= 40 for reason in ALLOW_ALL_EGRESS.values())


def _group(**properties: Any) -> dict[str, Any]:
    return {"Type": "AWS::EC2::SecurityGroup", "Properties": properties}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"CidrIp": "0.0.0.0/0", "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22}, "tcp 22 open to 0.0.0.0/0"),
        ({"CidrIpv6": "::/0", "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443}, "tcp 443 open to ::/0"),
        ({"CidrIp": "10.0.0.0/8", "IpProtocol": "-1"}, "ingress on all protocols"),
    ],
)
def test_open_ingress_check_catches_wide_rules(entry: dict, expected: str) -> None:
    rules = security_group_rules(fragment({"Db": _group(SecurityGroupIngress=[entry])}))
    problems = open_ingress_problems(rules, {"tcp 80", "tcp 443"})
    assert any(expected in problem for problem in problems), problems


def test_matrix_comparison_reports_missing_and_extra_rules(dev: Synthesized) -> None:
    stacks = dict(synthesized_stacks(dev))
    network = stacks["Sensor-dev-Network"]
    resources = json.loads(json.dumps(network.resources))
    (app_id,) = [lid for lid, path in network.paths.items() if path == "Network/SecurityGroups/App"]
    (ingress_id,) = [lid for lid, r in resources.items() if r["Type"] == "AWS::EC2::SecurityGroupIngress"
                     and r["Properties"]["GroupId"] == {"Fn::GetAtt": [app_id, "GroupId"]}]
    del resources[ingress_id]  # ALB -> app gone
    resources[app_id]["Properties"]["SecurityGroupIngress"] = [
        {"CidrIp": dev.config.network.vpc_cidr, "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22}]
    stacks[network.name] = StackTemplate(network.name, {**network.template, "Resources": resources}, network.paths)
    actual, expected = security_group_rules(stacks), expected_security_group_rules(dev.config)
    assert expected - actual == {Rule("in", APP, LB, f"tcp {dev.config.service.container_port}")}
    assert actual - expected == {Rule("in", APP, dev.config.network.vpc_cidr, "tcp 22")}
