"""The monthly cost estimate of one environment, read from its synthesized CloudFormation templates.

Each priced resource becomes a `LineItem` with a monthly amount at the service's minimum and maximum task
counts (only task-driven items differ) and the configuration keys that change it. Prices come from a dated
table in monitoring/prices/<region>.json; usage that templates cannot say (requests, log volume, NAT
traffic) comes from `Usage`, whose defaults are stated assumptions, overridable with `--assume`.
Resource types neither priced nor known to be free are reported as unpriced, never silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from environments.naming import EnvironmentNames
from monitoring.cost_types import FREE_TYPES, PRICED_TYPES

PRICES_DIR = Path(__file__).resolve().parent / "prices"
SECONDS_PER_MONTH = 730 * 3600

@dataclass(frozen=True)
class Usage:
    """Usage the templates cannot tell, per month. Assumptions, stated in the output; override with --assume."""

    requests_millions: float = 100.0  # HTTP requests through the ALB and WAF (~38 req/s on average)
    alb_average_lcus: float = 2.0  # load-balancer capacity units, averaged over the month
    nat_gb: float = 50.0  # traffic through the NAT gateways (image pulls, AWS APIs outside endpoints)
    endpoint_gb: float = 20.0  # traffic through the interface endpoints
    app_log_gb_per_task: float = 2.0  # JSON logs + EMF metric lines per running task
    other_log_gb_per_group: float = 0.5  # every other log group (Lambda, RDS, MSK, WAF...)
    flow_log_gb: float = 10.0  # VPC flow logs
    log_stored_months: float = 1.0  # how much ingested log stays stored (retention), in months of ingestion
    custom_metrics: int = 40  # EMF metrics x dimension sets (app + archiver)
    archiver_seconds_per_invocation: float = 1.0
    read_api_requests_millions: float = 1.0
    read_api_seconds_per_request: float = 0.05
    lake_gb: float = 100.0  # data-lake objects in S3 Standard
    cache_gb: float = 1.0  # data held in a serverless cache (rate-limit buckets, anomaly windows)
    cache_million_ecpus: float = 500.0  # serverless cache requests, in millions of ECPUs

    def with_overrides(self, overrides: Mapping[str, str]) -> Usage:
        known = {f.name: f.type for f in fields(self)}
        values: dict[str, Any] = {}
        for key, raw in overrides.items():
            if key not in known:
                raise ValueError(f"--assume {key}: unknown assumption (known: {', '.join(sorted(known))})")
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"--assume {key}={raw}: must be a number") from None
            if value < 0:
                raise ValueError(f"--assume {key}={raw}: must not be negative")
            values[key] = int(value) if known[key] == "int" else value
        return replace(self, **values)


@dataclass(frozen=True)
class LineItem:
    stack: str
    item: str
    quantity: str
    monthly_min: float
    monthly_max: float
    levers: str  # the configuration keys (cdk.json) that change it; "usage" when only usage does


@dataclass
class Estimate:
    env: str
    region: str
    prices: dict[str, Any]
    usage: Usage
    items: list[LineItem] = field(default_factory=list)
    unpriced: dict[str, int] = field(default_factory=dict)  # "stack: type" -> count

    def total(self, which: str) -> float:
        return sum(getattr(item, f"monthly_{which}") for item in self.items)

    def per_stack(self) -> dict[str, tuple[float, float]]:
        stacks: dict[str, tuple[float, float]] = {}
        for item in self.items:
            low, high = stacks.get(item.stack, (0.0, 0.0))
            stacks[item.stack] = (low + item.monthly_min, high + item.monthly_max)
        return stacks

    def biggest(self, count: int) -> list[LineItem]:
        return sorted(self.items, key=lambda item: item.monthly_max, reverse=True)[:count]


def load_prices(region: str, prices_dir: Path = PRICES_DIR) -> dict[str, Any]:
    path = prices_dir / f"{region}.json"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in prices_dir.glob("*.json"))) or "none"
        raise FileNotFoundError(f"no price table for region {region} ({path}); available: {available}")
    return json.loads(path.read_text())


def load_templates(template_dir: Path, env: str) -> dict[str, dict[str, Any]]:
    """Stack name -> template, for the environment's stacks in a cloud assembly directory."""
    templates = {path.name.removesuffix(".template.json"): json.loads(path.read_text())
                 for path in sorted(template_dir.glob(EnvironmentNames(env).stack_glob))}
    if not templates:
        raise FileNotFoundError(f"no {EnvironmentNames(env).stack_glob} in {template_dir}: synthesize first "
                                f"(make synth ENV={env})")
    return templates


def estimate(templates: Mapping[str, Mapping[str, Any]], prices: dict[str, Any], usage: Usage, *,
             env: str) -> Estimate:
    result = Estimate(env=env, region=prices["region"], prices=prices, usage=usage)
    for stack, template in templates.items():
        resources = template.get("Resources", {})
        result.items.extend(_stack_items(stack, resources, prices, usage))
        for resource in resources.values():
            kind = resource["Type"]
            if kind not in PRICED_TYPES and kind not in FREE_TYPES:
                key = f"{stack}: {kind}"
                result.unpriced[key] = result.unpriced.get(key, 0) + 1
    result.items = [item for item in result.items if item.monthly_max > 0 or item.monthly_min > 0]
    return result


@dataclass(frozen=True)
class _Stack:
    """One template's resources grouped by type, with the prices and usage to price them."""

    name: str
    resources: Mapping[str, Any]
    by_type: Mapping[str, list[tuple[str, dict[str, Any]]]]
    p: dict[str, Any]
    u: Usage

    @property
    def hours(self) -> int:
        return self.p["hours_per_month"]

    def of(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return self.by_type.get(kind, [])

    def flat(self, item: str, quantity: str, amount: float, levers: str) -> LineItem:
        return LineItem(self.name, item, quantity, round(amount, 2), round(amount, 2), levers)


def _stack_items(stack: str, resources: Mapping[str, Any], p: dict[str, Any], u: Usage) -> Iterable[LineItem]:
    by_type: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for logical_id, resource in resources.items():
        by_type.setdefault(resource["Type"], []).append((logical_id, resource.get("Properties", {})))
    s = _Stack(stack, resources, by_type, p, u)
    yield from _network(s)
    yield from _databases(stack, s.of("AWS::RDS::DBInstance"), resources, p, s.flat)
    yield from _msk(s)
    services = list(_fargate(stack, by_type, resources, p, s.hours))
    yield from (item for item, _ in services)
    scaled = next((tasks for item, tasks in services if "service.scaling" in item.levers), (0, 0))
    yield from _edge(s)
    yield from _management(s)
    yield from _logs(stack, s.of("AWS::Logs::LogGroup"), p, u, scaled)
    yield from _lambdas(stack, by_type, p, u)
    yield from _storage_and_api(s)
    yield from _caches(s)


def _network(s: _Stack) -> Iterable[LineItem]:
    p, u, hours = s.p, s.u, s.hours
    nats = s.of("AWS::EC2::NatGateway")
    if nats:
        amount = len(nats) * hours * (p["nat_gateway_hour"] + p["public_ipv4_hour"]) + u.nat_gb * p["nat_gateway_gb"]
        yield s.flat("NAT gateways (+ their public IPv4)", f"{len(nats)} x {hours} h, {u.nat_gb:g} GB processed",
                     amount, "network.nat_gateways")
    interface = [props for _, props in s.of("AWS::EC2::VPCEndpoint") if props.get("VpcEndpointType") == "Interface"]
    if interface:
        az_hours = sum(max(1, len(props.get("SubnetIds", []))) for props in interface) * hours
        amount = az_hours * p["vpc_interface_endpoint_az_hour"] + u.endpoint_gb * p["vpc_interface_endpoint_gb"]
        yield s.flat("VPC interface endpoints", f"{len(interface)} endpoints, {az_hours // hours} ENIs", amount,
                     "network.availability_zones (one ENI per AZ)")


def _msk(s: _Stack) -> Iterable[LineItem]:
    for _, props in s.of("AWS::MSK::Cluster"):
        brokers = int(props["NumberOfBrokerNodes"])
        node = props["BrokerNodeGroupInfo"]
        kind = node["InstanceType"]
        volume = int(node.get("StorageInfo", {}).get("EBSStorageInfo", {}).get("VolumeSize", 0))
        rate = s.p["msk_broker_hour"].get(kind)
        if rate is None:
            yield LineItem(s.name, f"MSK brokers {kind}: NO PRICE in the table", f"{brokers} brokers", 0, 0,
                           "streaming.broker_instance_type")
        else:
            yield s.flat(f"MSK brokers {kind}", f"{brokers} x {s.hours} h", brokers * s.hours * rate,
                         "streaming.broker_count, streaming.broker_instance_type")
        yield s.flat("MSK broker storage", f"{brokers} x {volume} GB", brokers * volume * s.p["msk_storage_gb_month"],
                     "streaming.broker_volume_gib, streaming.broker_count")


def _edge(s: _Stack) -> Iterable[LineItem]:
    p, u, hours = s.p, s.u, s.hours
    for _, props in s.of("AWS::ElasticLoadBalancingV2::LoadBalancer"):
        public_ips = len(props.get("Subnets", [])) if props.get("Scheme") == "internet-facing" else 0
        amount = hours * (p["alb_hour"] + u.alb_average_lcus * p["alb_lcu_hour"] + public_ips * p["public_ipv4_hour"])
        yield s.flat("Application Load Balancer", f"{hours} h, {u.alb_average_lcus:g} LCU average, "
                     f"{public_ips} public IPv4", amount, "usage (requests); network.availability_zones")
    for _, props in s.of("AWS::WAFv2::WebACL"):
        rules = len(props.get("Rules", []))
        amount = p["waf_web_acl_month"] + rules * p["waf_rule_month"] + u.requests_millions * p["waf_million_requests"]
        yield s.flat("WAF web ACL", f"1 ACL, {rules} rules, {u.requests_millions:g} M requests", amount,
                     "usage (requests); waf.* rules")


def _management(s: _Stack) -> Iterable[LineItem]:
    p, u = s.p, s.u
    secrets = len(s.of("AWS::SecretsManager::Secret"))
    if secrets:
        yield s.flat("Secrets Manager secrets", f"{secrets} secrets", secrets * p["secrets_manager_secret_month"],
                     "load_test.enabled (its client secret)")
    keys = len(s.of("AWS::KMS::Key"))
    if keys:
        yield s.flat("KMS customer-managed keys", f"{keys} keys", keys * p["kms_key_month"], "none")
    alarm_metrics = sum(max(1, sum(1 for m in props.get("Metrics", []) if "MetricStat" in m))
                        for _, props in s.of("AWS::CloudWatch::Alarm"))
    composites = len(s.of("AWS::CloudWatch::CompositeAlarm"))
    dashboards = len(s.of("AWS::CloudWatch::Dashboard"))
    if alarm_metrics or composites or dashboards:
        amount = (alarm_metrics * p["cloudwatch_alarm_metric_month"] + composites * p["cloudwatch_composite_alarm_month"]
                  + dashboards * p["cloudwatch_dashboard_month"])
        yield s.flat("CloudWatch alarms and dashboards", f"{alarm_metrics} alarm metrics, {composites} composite, "
                     f"{dashboards} dashboards", amount, "monitoring/catalogue.py, database.read_replica")
    if dashboards:  # the Monitoring stack: the custom metrics the app and archiver emit
        yield s.flat("CloudWatch custom metrics (EMF)", f"{u.custom_metrics} metrics",
                     u.custom_metrics * p["cloudwatch_custom_metric_month"], "app/observability/metrics.py")


def _storage_and_api(s: _Stack) -> Iterable[LineItem]:
    if any("DataLake" in logical_id for logical_id, _ in s.of("AWS::S3::Bucket")):
        yield s.flat("S3 data lake (Standard)", f"{s.u.lake_gb:g} GB", s.u.lake_gb * s.p["s3_standard_gb_month"],
                     "usage (lake size); datalake.infrequent_access_after_days")
    if s.of("AWS::ApiGatewayV2::Api"):
        yield s.flat("HTTP API (read API)", f"{s.u.read_api_requests_millions:g} M requests",
                     s.u.read_api_requests_millions * s.p["http_api_million_requests"], "pipeline.read_api_enabled")


def _caches(s: _Stack) -> Iterable[LineItem]:
    p, u = s.p, s.u
    for _, props in s.of("AWS::ElastiCache::ServerlessCache"):
        gb = max(u.cache_gb, p["elasticache_serverless_valkey_minimum_gb"])
        amount = gb * s.hours * p["elasticache_serverless_valkey_gb_hour"] \
            + u.cache_million_ecpus * p["elasticache_serverless_valkey_million_ecpu"]
        yield s.flat(f"ElastiCache serverless {props.get('Engine', 'valkey')}",
                     f"{gb:g} GB stored, {u.cache_million_ecpus:g} M ECPUs", amount, "usage (cache size, requests)")
    nodes = [(props.get("CacheNodeType"), _cache_nodes(props)) for _, props in
             s.of("AWS::ElastiCache::ReplicationGroup") + s.of("AWS::ElastiCache::CacheCluster")]
    for kind, count in nodes:
        rate = p["elasticache_node_hour"].get(kind)
        if rate is None:
            yield LineItem(s.name, f"ElastiCache {kind}: NO PRICE in the table", f"{count} nodes", 0, 0, "cache nodes")
        else:
            yield s.flat(f"ElastiCache {kind}", f"{count} nodes x {s.hours} h", count * s.hours * rate,
                         "cache node type and replicas")


def _cache_nodes(props: Mapping[str, Any]) -> int:
    if "NumCacheNodes" in props:
        return int(props["NumCacheNodes"])
    if "NumCacheClusters" in props:
        return int(props["NumCacheClusters"])
    return int(props.get("NumNodeGroups", 1)) * (int(props.get("ReplicasPerNodeGroup", 0)) + 1)


def _databases(stack, instances, _resources, p, flat) -> Iterable[LineItem]:
    hours = p["hours_per_month"]
    storage_of = {logical_id: props for logical_id, props in instances}
    for _, props in instances:
        kind = props["DBInstanceClass"]
        replica = "SourceDBInstanceIdentifier" in props
        multi_az = bool(props.get("MultiAZ")) and not replica
        factor = p["rds_multi_az_factor"] if multi_az else 1
        role = "read replica" if replica else ("primary, Multi-AZ" if multi_az else "primary, single-AZ")
        rate = p["rds_postgresql_instance_hour"].get(kind)
        levers = "database.instance_class" + (", database.read_replica" if replica else ", database.multi_az")
        if rate is None:
            yield LineItem(stack, f"RDS {kind} ({role}): NO PRICE in the table", "1 instance", 0, 0, levers)
        else:
            yield flat(f"RDS {kind} ({role})", f"{factor} x {hours} h", factor * hours * rate, levers)
        source = _source_instance(props, storage_of) if replica else props
        gib = int(source.get("AllocatedStorage", 0) or 0)
        storage_type = (source.get("StorageType") or "gp2")
        storage_rate = p["rds_storage_gb_month"].get(storage_type, p["rds_storage_gb_month"]["gp2"])
        yield flat(f"RDS storage {storage_type} ({role})", f"{gib} GB x {factor}", gib * factor * storage_rate,
                   "database.allocated_storage_gib")


def _source_instance(props: Mapping[str, Any], instances: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    """A replica's storage is its source's: find the source through the Ref inside its identifier."""
    text = json.dumps(props.get("SourceDBInstanceIdentifier"))
    for logical_id, source in instances.items():
        if f'"Ref": "{logical_id}"' in text:
            return source
    return props


def _fargate(stack, by_type, resources, p, hours) -> Iterable[tuple[LineItem, tuple[int, int]]]:
    """One item per ECS service, with its (min, max) task counts: the autoscaling target's, else DesiredCount."""
    targets = [props for _, props in by_type.get("AWS::ApplicationAutoScaling::ScalableTarget", [])
               if props.get("ScalableDimension") == "ecs:service:DesiredCount"]
    for logical_id, props in by_type.get("AWS::ECS::Service", []):
        task_ref = props.get("TaskDefinition", {}).get("Ref")
        task = resources.get(task_ref, {}).get("Properties", {})
        vcpu, gb = int(task.get("Cpu", 256)) / 1024, int(task.get("Memory", 512)) / 1024
        arch = task.get("RuntimePlatform", {}).get("CpuArchitecture", "X86_64")
        rates = p["fargate"].get(arch, p["fargate"]["X86_64"])
        spot = any(s.get("CapacityProvider") == "FARGATE_SPOT" for s in props.get("CapacityProviderStrategy", []))
        fraction = p["fargate"]["spot_fraction_of_on_demand"] if spot else 1.0
        target = next((t for t in targets if f'"{logical_id}"' in json.dumps(t.get("ResourceId"))), None)
        low = int(target["MinCapacity"]) if target else int(props.get("DesiredCount", 1) or 1)
        high = int(target["MaxCapacity"]) if target else low
        per_task = hours * (vcpu * rates["vcpu_hour"] + gb * rates["gb_hour"]) * fraction
        name = logical_id.removesuffix("Service").rstrip("0123456789ABCDEF") or logical_id
        levers = ("service.cpu, service.memory_mib, service.scaling.min_tasks/max_tasks" if target
                  else "load_test.workers, load_test.worker_cpu/worker_memory_mib, load_test.spot")
        yield LineItem(stack, f"Fargate {name} ({vcpu:g} vCPU / {gb:g} GB {arch}{', Spot' if spot else ''})",
                       f"{low}..{high} tasks" if high != low else f"{low} tasks",
                       round(low * per_task, 2), round(high * per_task, 2), levers), (low, high)


def _logs(stack, groups, p, u: Usage, tasks: tuple[int, int]) -> Iterable[LineItem]:
    if not groups:
        return
    per_gb = p["cloudwatch_logs_ingest_gb"] + u.log_stored_months * p["cloudwatch_logs_storage_gb_month"]
    app = [g for g, _ in groups if g.startswith("IngestAppLogs")]
    flow = [g for g, _ in groups if "FlowLogs" in g]
    others = len(groups) - len(app) - len(flow)
    if app:
        low, high = (count * u.app_log_gb_per_task * per_gb for count in tasks)
        yield LineItem(stack, "CloudWatch Logs: app tasks", f"{u.app_log_gb_per_task:g} GB per running task",
                       round(low, 2), round(high, 2), "service.scaling.min_tasks/max_tasks, log level")
    if flow:
        amount = u.flow_log_gb * per_gb
        yield LineItem(stack, "CloudWatch Logs: VPC flow logs", f"{u.flow_log_gb:g} GB", round(amount, 2),
                       round(amount, 2), "network.flow_log_retention_days, usage")
    if others:
        amount = others * u.other_log_gb_per_group * per_gb
        yield LineItem(stack, "CloudWatch Logs: other groups", f"{others} groups x {u.other_log_gb_per_group:g} GB",
                       round(amount, 2), round(amount, 2), "log_retention_days, usage")


def _lambdas(stack, by_type, p, u: Usage) -> Iterable[LineItem]:
    mappings = [props for _, props in by_type.get("AWS::Lambda::EventSourceMapping", [])]
    for _, props in by_type.get("AWS::Lambda::Function", []):
        name = props.get("FunctionName")
        if not isinstance(name, str) or not name.endswith(("-archiver", "-read-api")):
            continue  # hooks and custom-resource handlers run a few times per deployment
        gb = int(props.get("MemorySize", 128)) / 1024
        arch = (props.get("Architectures") or ["x86_64"])[0]
        rate = p[f"lambda_{arch.replace('-', '_')}_gb_second"]
        if name.endswith("-archiver"):
            window = max(1, max((int(m.get("MaximumBatchingWindowInSeconds", 1)) for m in mappings), default=1))
            invocations = SECONDS_PER_MONTH / window
            seconds = invocations * u.archiver_seconds_per_invocation
            levers = "pipeline.archiver_memory_mb, pipeline.maximum_batching_window_seconds"
            quantity = f"{invocations / 1e6:.2f} M invocations (one per batching window) x {gb:g} GB"
        else:
            invocations = u.read_api_requests_millions * 1e6
            seconds = invocations * u.read_api_seconds_per_request
            levers = "pipeline.read_api_memory_mb, usage"
            quantity = f"{u.read_api_requests_millions:g} M requests x {gb:g} GB"
        amount = seconds * gb * rate + invocations / 1e6 * p["lambda_million_requests"]
        yield LineItem(stack, f"Lambda {name}", quantity, round(amount, 2), round(amount, 2), levers)
