"""The one place that spells an environment's resource and stack names.

Fixed names (README: fixed names) let the stacks, the alarm catalogue, the on-call tools and the
rollback commands find the same resources without cross-stack references: the Service stack names
its ECS service `sensor-<env>-ingest`, and `make rollback-help` and `monitoring.watch` use the same
spelling from here. Names that include a deploy-time token (account id) take it as an argument, so
this module stays plain Python.
"""

from __future__ import annotations

from dataclasses import dataclass

# Stacks in deployment order; the opt-in LoadTest stack comes last and only while enabled.
CORE_DOMAINS = ("Network", "Data", "Service", "Pipeline", "Monitoring")
LOAD_TEST_DOMAIN = "LoadTest"
STATEFUL_DOMAINS = frozenset({"Data"})
# The alias every Lambda function of the platform serves traffic through (blue/green by CodeDeploy).
LIVE_ALIAS = "live"


@dataclass(frozen=True)
class EnvironmentNames:
    """Every name derived from one environment name (`dev`, `prod`, ...)."""

    env_name: str

    @property
    def prefix(self) -> str:
        """`sensor-<env>`: the start of every resource name, the APP_ENV of its tasks and functions."""
        return f"sensor-{self.env_name}"

    def stack(self, domain: str) -> str:
        """`Sensor-<env>-<Domain>`, e.g. `Sensor-prod-Data`."""
        return f"Sensor-{self.env_name}-{domain}"

    @property
    def stack_glob(self) -> str:
        """Matches the synthesized templates of every stack of the environment."""
        return f"{self.stack('*')}.template.json"

    def stacks(self, domains: tuple[str, ...] = CORE_DOMAINS) -> list[str]:
        return [self.stack(domain) for domain in domains]

    @property
    def stateful_stacks(self) -> list[str]:
        return [self.stack(domain) for domain in CORE_DOMAINS if domain in STATEFUL_DOMAINS]

    @property
    def alarm_prefix(self) -> str:
        """Every alarm of the environment starts with this (`sensor-<env>-<severity>-<name>`)."""
        return f"{self.prefix}-"

    # Resources other parts of the repository look up by name: one line each, a table of names.
    ecs_cluster = property(lambda self: self.prefix)
    ingest_service = property(lambda self: f"{self.prefix}-ingest")
    db_instance = property(lambda self: self.prefix)
    db_replica = property(lambda self: f"{self.prefix}-replica")
    msk_cluster = property(lambda self: self.prefix)
    archiver_function = property(lambda self: f"{self.prefix}-archiver")
    read_api_function = property(lambda self: f"{self.prefix}-read-api")
    smoke_test_function = property(lambda self: f"{self.prefix}-deploy-smoke")
    lambda_application = property(lambda self: f"{self.prefix}-lambdas")  # CodeDeploy, for the Lambda aliases
    web_acl = property(lambda self: f"{self.prefix}-edge")
    state_cache = property(lambda self: f"{self.prefix}-state")
    glue_database = property(lambda self: f"sensor_{self.env_name.replace('-', '_')}_lake")  # Glue allows no "-"

    def datalake_bucket(self, account: str, region: str) -> str:
        return f"{self.prefix}-datalake-{account}-{region}"

    def load_test_bucket(self, account: str, region: str) -> str:
        return f"{self.prefix}-loadtest-{account}-{region}"
