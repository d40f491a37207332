"""`environments/naming.py` is the one spelling of the platform's fixed names: the synthesized stacks
carry exactly the names the alarm catalogue, the on-call tools and the rollback commands look up."""

from __future__ import annotations

from typing import Any

from environments.naming import CORE_DOMAINS, LIVE_ALIAS, EnvironmentNames
from tests.infra.conftest import Synthesized, only


def _names_of(template, resource_type: str, key: str) -> set[Any]:
    return {resource["Properties"].get(key) for resource in template.find_resources(resource_type).values()}


def test_names_follow_the_documented_pattern() -> None:
    names = EnvironmentNames("eu-prod")
    assert names.prefix == "sensor-eu-prod"
    assert names.stack("Data") == "Sensor-eu-prod-Data"
    assert names.stacks() == [f"Sensor-eu-prod-{domain}" for domain in CORE_DOMAINS]
    assert names.stateful_stacks == ["Sensor-eu-prod-Data"]
    assert names.ingest_service == "sensor-eu-prod-ingest"
    assert names.db_replica == "sensor-eu-prod-replica"
    assert names.glue_database == "sensor_eu_prod_lake"  # Glue allows no hyphen
    assert names.datalake_bucket("123456789012", "eu-west-1") == "sensor-eu-prod-datalake-123456789012-eu-west-1"


def test_stacks_are_named_sensor_env_domain_in_deployment_order(each_env: Synthesized) -> None:
    env = each_env.config.name
    assert [stack.stack_name for stack in each_env.platform.stacks][: len(CORE_DOMAINS)] == [
        f"Sensor-{env}-{domain}" for domain in CORE_DOMAINS
    ]


def test_templates_carry_the_names_from_naming(each_env: Synthesized) -> None:
    names = EnvironmentNames(each_env.config.name)
    instances = _names_of(each_env.data, "AWS::RDS::DBInstance", "DBInstanceIdentifier")
    assert instances == {names.db_instance, *([names.db_replica] if each_env.config.database.read_replica else [])}
    assert _names_of(each_env.data, "AWS::MSK::Cluster", "ClusterName") == {names.msk_cluster}
    assert _names_of(each_env.data, "AWS::ElastiCache::ServerlessCache", "ServerlessCacheName") == {names.state_cache}
    assert _names_of(each_env.service, "AWS::ECS::Cluster", "ClusterName") == {names.ecs_cluster}
    assert _names_of(each_env.service, "AWS::ECS::Service", "ServiceName") == {names.ingest_service}
    assert _names_of(each_env.service, "AWS::WAFv2::WebACL", "Name") == {names.web_acl}
    functions = _names_of(each_env.pipeline, "AWS::Lambda::Function", "FunctionName")
    assert names.archiver_function in functions
    assert (names.read_api_function in functions) == each_env.config.pipeline.read_api_enabled
    assert names.smoke_test_function in _names_of(each_env.service, "AWS::Lambda::Function", "FunctionName")
    assert _names_of(each_env.pipeline, "AWS::CodeDeploy::Application", "ApplicationName") == {
        names.lambda_application
    }
    assert _names_of(each_env.pipeline, "AWS::Lambda::Alias", "Name") == {LIVE_ALIAS}
    database = only(each_env.pipeline, "AWS::Glue::Database")["Properties"]["DatabaseInput"]["Name"]
    assert database == names.glue_database
