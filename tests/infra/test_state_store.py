"""The shared state store (ElastiCache Serverless for Valkey): private, reachable only from the app tasks,
TLS + encryption at rest with a rotated customer key, IAM authentication with a scoped user, the app task
pointed at it with `elasticache:Connect` on exactly the cache and its user, and warning alarms on it."""

from __future__ import annotations

import json

from tests.infra.conftest import Synthesized, only


def test_serverless_valkey_in_isolated_subnets_with_its_own_key(each_env: Synthesized) -> None:
    cache = only(each_env.data, "AWS::ElastiCache::ServerlessCache")["Properties"]
    config = each_env.config.state_store
    assert cache["Engine"] == "valkey" and cache["MajorEngineVersion"] == config.major_engine_version
    assert cache["ServerlessCacheName"] == f"sensor-{each_env.config.name}-state"
    assert "StateStoreKey" in str(cache["KmsKeyId"])  # encryption at rest with the customer key
    assert cache["CacheUsageLimits"] == {"DataStorage": {"Maximum": config.max_data_gib, "Unit": "GB"},
                                         "ECPUPerSecond": {"Maximum": config.max_ecpu_per_second}}
    assert json.dumps(cache["SubnetIds"]).count("isolatedSubnet") == len(cache["SubnetIds"])  # private only
    assert len(cache["SubnetIds"]) == len(each_env.config.network.availability_zones)
    key = each_env.data.find_resources("AWS::KMS::Key")
    assert [k["Properties"]["EnableKeyRotation"] for name, k in key.items() if name.startswith("StateStoreKey")] == [True]


def test_only_the_app_tasks_reach_the_cache(each_env: Synthesized) -> None:
    cache = only(each_env.data, "AWS::ElastiCache::ServerlessCache")["Properties"]
    assert len(cache["SecurityGroupIds"]) == 1 and "StateStoreSecurityGroup" in str(cache["SecurityGroupIds"])
    rules = [rule["Properties"] for rule in each_env.data.find_resources("AWS::EC2::SecurityGroupIngress").values()
             if "StateStoreSecurityGroup" in str(rule["Properties"]["GroupId"])]
    assert len(rules) == 1
    assert "SecurityGroupsApp" in str(rules[0]["SourceSecurityGroupId"]) and "CidrIp" not in rules[0]
    assert (rules[0]["FromPort"], rules[0]["ToPort"]) == (6379, 6380)
    group = [g["Properties"] for name, g in each_env.data.find_resources("AWS::EC2::SecurityGroup").items()
             if name.startswith("StateStoreSecurityGroup")]
    assert group[0]["SecurityGroupEgress"][0]["CidrIp"] == "255.255.255.255/32"  # no egress


def test_iam_authentication_with_a_scoped_user_and_the_default_user_off(each_env: Synthesized) -> None:
    users = {u["Properties"]["UserName"]: u["Properties"]
             for u in each_env.data.find_resources("AWS::ElastiCache::User").values()}
    app = users[f"sensor-{each_env.config.name}-app"]
    assert app["AuthenticationMode"] == {"Type": "iam"} and app["Engine"] == "valkey"
    assert app["AccessString"].startswith("on ~sensor:* ") and "-@dangerous" in app["AccessString"]
    assert users["default"]["AccessString"].startswith("off")
    group = only(each_env.data, "AWS::ElastiCache::UserGroup")["Properties"]
    cache = only(each_env.data, "AWS::ElastiCache::ServerlessCache")["Properties"]
    assert cache["UserGroupId"] == group["UserGroupId"]
    assert sorted(group["UserIds"]) == sorted([f"sensor-{each_env.config.name}-app",
                                               f"sensor-{each_env.config.name}-default"])


def test_the_app_task_connects_with_tls_and_its_role_only(each_env: Synthesized) -> None:
    (task,) = each_env.service.find_resources("AWS::ECS::TaskDefinition").values()
    environment = {item["Name"]: item["Value"] for item in task["Properties"]["ContainerDefinitions"][0]["Environment"]}
    assert json.dumps(environment["STATE_STORE_URL"]).count("rediss://") == 1
    assert environment["STATE_STORE_IAM_USER"] == f"sensor-{each_env.config.name}-app"
    assert environment["STATE_STORE_CACHE_NAME"] == f"sensor-{each_env.config.name}-state"
    statements = [statement for policy in each_env.service.find_resources("AWS::IAM::Policy").values()
                  for statement in policy["Properties"]["PolicyDocument"]["Statement"]
                  if "elasticache:Connect" in json.dumps(statement["Action"])]
    assert len(statements) == 1 and statements[0]["Action"] == "elasticache:Connect"
    resources = json.dumps(statements[0]["Resource"])
    assert f"serverlesscache:sensor-{each_env.config.name}-state" in resources and "AppUser" in resources
    assert "*" not in resources.replace("arn:", "")


def test_warning_alarms_watch_the_store_and_the_fallback(each_env: Synthesized) -> None:
    alarms = {a["Properties"]["AlarmName"]: a["Properties"]
              for a in each_env.templates["Monitoring"].find_resources("AWS::CloudWatch::Alarm").values()}
    prefix = f"sensor-{each_env.config.name}-warning-"

    def metric(name: str) -> dict:
        (query,) = alarms[prefix + name]["Metrics"]  # a labelled metric renders as a one-query list
        return query["MetricStat"]

    fallback = metric("state-store-fallback")
    assert fallback["Metric"]["MetricName"] == "StateStoreFallbacks" and fallback["Stat"] == "Sum"
    assert alarms[prefix + "state-store-fallback"]["AlarmDescription"].endswith("state-store-fallback.md")
    throttled = metric("state-store-throttled")["Metric"]
    assert throttled["Namespace"] == "AWS/ElastiCache"
    assert throttled["Dimensions"] == [{"Name": "clusterId", "Value": f"sensor-{each_env.config.name}-state"}]
    memory = alarms[prefix + "state-store-memory-high"]
    assert memory["Threshold"] == 0.8 * each_env.config.state_store.max_data_gib * 1024**3
