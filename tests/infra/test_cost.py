"""`make cost`: the estimate is read from the synthesized templates and moves with the configuration."""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitoring import cost
from monitoring.cost_model import Estimate, Usage, estimate, load_prices, load_templates
from tests.infra.conftest import Synthesized


def estimate_of(synthesized: Synthesized) -> Estimate:
    env = synthesized.config.name
    return estimate(load_templates(synthesized.outdir, env), load_prices(synthesized.config.region), Usage(), env=env)


def item(result: Estimate, prefix: str) -> Any:
    (found,) = [i for i in result.items if i.item.startswith(prefix)]
    return found


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_cost_prints_totals_per_stack_and_the_biggest_items(env: str, request: pytest.FixtureRequest,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    synthesized: Synthesized = request.getfixturevalue(env)
    assert cost.main(["--env", env, "--cdk-out", str(synthesized.outdir), "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert "ESTIMATE" in out and "list prices, not a quote" in out and "as of 2025-06" in out
    for stack in synthesized.platform.stacks:
        assert stack.stack_name in out
    assert "total per month" in out
    biggest = [line for line in out.splitlines() if line[:5].strip().rstrip(".").isdigit()]
    assert len(biggest) == 5 and all("change:" in line for line in biggest)
    assert "Not priced" not in out, "a resource type is neither priced nor known to be free"


def test_the_estimate_reads_the_templates(dev: Synthesized, prod: Synthesized) -> None:
    dev_cost, prod_cost = estimate_of(dev), estimate_of(prod)
    fargate = item(dev_cost, "Fargate Ingest")
    assert fargate.quantity == "1..20 tasks"
    assert fargate.monthly_max == pytest.approx(20 * fargate.monthly_min, abs=0.2)
    assert item(prod_cost, "NAT gateways").quantity.startswith("3 x")  # three NAT gateways in prod, one in dev
    assert item(dev_cost, "NAT gateways").quantity.startswith("1 x")
    assert item(prod_cost, "RDS db.r6g.large (read replica)").monthly_max > 0
    assert prod_cost.total("max") > dev_cost.total("max") - item(dev_cost, "Fargate LocustWorkers").monthly_max


def test_more_tasks_raise_the_maximum_only(dev: Synthesized, synth_variant) -> None:
    def more_tasks(raw: dict[str, Any]) -> None:
        raw["service"]["scaling"]["max_tasks"] = 40

    before, after = estimate_of(dev), estimate_of(synth_variant("dev", more_tasks))
    assert after.total("max") > before.total("max")
    assert after.total("min") == pytest.approx(before.total("min"))
    assert item(after, "Fargate Ingest").quantity == "1..40 tasks"


def test_a_bigger_database_class_raises_both(dev: Synthesized, synth_variant) -> None:
    def bigger(raw: dict[str, Any]) -> None:
        raw["database"]["instance_class"] = "r6g.large"

    before, after = estimate_of(dev), estimate_of(synth_variant("dev", bigger))
    assert after.total("min") > before.total("min") and after.total("max") > before.total("max")
    assert item(after, "RDS db.r6g.large").monthly_max > item(before, "RDS db.t4g.medium").monthly_max


def test_usage_assumptions_are_overridable_and_validated(dev: Synthesized,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--env", "dev", "--cdk-out", str(dev.outdir), "--json"]
    assert cost.main(args) == 0
    base = json.loads(capsys.readouterr().out)
    assert cost.main([*args, "--assume", "requests_millions=1000"]) == 0
    more = json.loads(capsys.readouterr().out)
    assert base["estimate"] is True and more["total_max"] > base["total_max"]
    assert cost.main([*args, "--assume", "requests=5"]) == 2
    assert "unknown assumption" in capsys.readouterr().err
    assert cost.main([*args, "--assume", "nat_gb=-1"]) == 2
    assert "must not be negative" in capsys.readouterr().err


def test_missing_templates_say_how_to_make_them(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--env", "dev", "--cdk-out", str(tmp_path)]) == 2
    assert "make synth ENV=dev" in capsys.readouterr().err


def test_caches_are_priced_and_unknown_types_are_reported() -> None:
    template = {"Resources": {
        "Cache": {"Type": "AWS::ElastiCache::ServerlessCache", "Properties": {"Engine": "valkey"}},
        "Nodes": {"Type": "AWS::ElastiCache::ReplicationGroup",
                  "Properties": {"CacheNodeType": "cache.t4g.small", "NumCacheClusters": 2}},
        "Odd": {"Type": "AWS::Example::Thing", "Properties": {}},
    }}
    result = estimate({"Sensor-x-Service": template}, load_prices("eu-west-1"), Usage(), env="x")
    assert item(result, "ElastiCache serverless valkey").monthly_max > 0
    nodes = item(result, "ElastiCache cache.t4g.small")
    assert nodes.quantity.startswith("2 nodes") and nodes.monthly_max == pytest.approx(2 * 730 * 0.036, abs=0.01)
    assert result.unpriced == {"Sensor-x-Service: AWS::Example::Thing": 1}
