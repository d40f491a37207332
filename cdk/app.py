"""CDK entry point: `cdk synth -c env=dev` (cdk.json runs `python -m cdk.app`).

Per-environment values are chosen here, once; constructs receive them as typed props and never
read context or environment variables themselves.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from cdk.components.deployment_alarms import link_deployment_runbooks
from cdk.components.encryption import encrypt_logs_and_secrets
from cdk.stacks.data import DataStack
from cdk.stacks.load_test import LoadTestStack
from cdk.stacks.monitoring import MonitoringStack
from cdk.stacks.network import NetworkStack
from cdk.stacks.pipeline import LambdaSources, PipelineStack
from cdk.stacks.service import ServiceStack
from environments.config import ENVIRONMENTS_CONTEXT_KEY, ConfigError, EnvironmentConfig, load_environment
from environments.naming import LOAD_TEST_DOMAIN, EnvironmentNames

REPO_ROOT = Path(__file__).resolve().parent.parent
# The app image builds from the root (app/Dockerfile; /.dockerignore admits app/ and contracts/ only).
APP_IMAGE_DIRECTORY = REPO_ROOT
LOAD_TEST_IMAGE_DIRECTORY = REPO_ROOT / "loadtests"
LAMBDA_SOURCES = LambdaSources(
    archiver_directory=REPO_ROOT / "lambda" / "archiver",
    read_api_directory=REPO_ROOT / "lambda" / "api",
    app_package=REPO_ROOT / "app",
    contracts_package=REPO_ROOT / "contracts",
    constraints=REPO_ROOT / "constraints.txt",
)


@dataclass(frozen=True)
class Platform:
    """The stacks of one environment, in deployment order."""

    config: EnvironmentConfig
    network: NetworkStack
    data: DataStack
    service: ServiceStack
    pipeline: PipelineStack
    monitoring: MonitoringStack
    # Only while `load_test.enabled`.
    load_test: LoadTestStack | None = None

    @property
    def stacks(self) -> tuple[cdk.Stack, ...]:
        core = (self.network, self.data, self.service, self.pipeline, self.monitoring)
        return core + ((self.load_test,) if self.load_test else ())


# `cdk deploy --all -c env=dev` deploys what `make deploy` deploys: the opt-in LoadTest stack (while
# `load_test.enabled`) joins the app only with `-c load_test=true` (make load-test-deploy passes it).
LOAD_TEST_CONTEXT_KEY = "load_test"


def wants_load_test(app: cdk.App) -> bool:
    value = app.node.try_get_context(LOAD_TEST_CONTEXT_KEY)
    if value in (None, False, "false"):
        return False
    if value in (True, "true"):
        return True
    raise ConfigError(f"context {LOAD_TEST_CONTEXT_KEY} must be true or false, got {value!r}")


def build_platform(app: cdk.App, config: EnvironmentConfig, *, with_load_test: bool = True) -> Platform:
    env = cdk.Environment(account=config.account, region=config.region)
    names = EnvironmentNames(config.name)

    def stack(domain: str, summary: str) -> dict[str, Any]:
        """What every stack of the environment takes: its name, the config, the environment, a description."""
        return {"scope": app, "construct_id": names.stack(domain), "config": config, "env": env,
                "description": f"Sensor platform ({config.name}): {summary}"}

    network = NetworkStack(**stack("Network", "VPC, subnets, endpoints, security groups"))
    data = DataStack(
        **stack("Data", "PostgreSQL, MSK, S3 data lake (stateful)"),
        vpc=network.vpc, app_security_group=network.platform_network.app_security_group,
    )
    stores = {"database": data.database_access, "stream": data.stream_access, "lake": data.lake_access}
    service = ServiceStack(
        **stack("Service", "ECS Fargate service, ALB, WAF"),
        image_directory=APP_IMAGE_DIRECTORY, network=network.platform_network,
        state_store=data.state_store.access, **stores,
    )
    pipeline = PipelineStack(
        **stack("Pipeline", "MSK to S3 archiver, Glue catalog, read-only API"),
        sources=LAMBDA_SOURCES, vpc=network.vpc, edge=service.edge, **stores,
    )
    monitoring = MonitoringStack(
        **stack("Monitoring", "alarms, SNS alarm topics, dashboards"),
        load_balancer=service.ingest.load_balancer_names,
    )
    load_test = None
    if config.load_test.enabled and with_load_test:
        load_test = LoadTestStack(
            **stack(LOAD_TEST_DOMAIN, "distributed Locust load generator (opt-in)"),
            image_directory=LOAD_TEST_IMAGE_DIRECTORY, vpc=network.vpc, target_url=service.ingest.url,
        )
    platform = Platform(
        config=config, network=network, data=data, service=service, pipeline=pipeline, monitoring=monitoring,
        load_test=load_test,
    )
    for stack in platform.stacks:
        encrypt_logs_and_secrets(stack, names)
        link_deployment_runbooks(stack, config.monitoring.runbook_base_url)
        cdk.Tags.of(stack).add("project", "sensor-platform")
        cdk.Tags.of(stack).add("environment", config.name)
    return platform


def build_app(app: cdk.App) -> Platform:
    """Build the selected environment's stacks into `app` and register cdk-nag."""
    config = load_environment(
        app.node.try_get_context(ENVIRONMENTS_CONTEXT_KEY), app.node.try_get_context("env")
    )
    platform = build_platform(app, config, with_load_test=wants_load_test(app))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return platform


def main() -> int:
    app = cdk.App()
    try:
        build_app(app)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
