"""`make deploy`: one stack at a time in dependency order; production's stateful stack only if confirmed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from cdk.app import Platform  # lists the stacks in deployment order
from cdk.deploy_plan import DeployPlanError, build_plan, main, rollback_help, run_plan
from environments.config import load_from_cdk_json
from tests.conftest import REPO_ROOT
from tests.infra.conftest import Synthesized, only

ORDER = ["Network", "Data", "Service", "Pipeline", "Monitoring"]


def deployed(steps) -> list[str]:
    return [step.stack for step in steps if step.stack]


def test_dev_deploys_every_stack_in_dependency_order_without_confirmation() -> None:
    steps = build_plan(load_from_cdk_json("dev"))
    assert deployed(steps) == [f"Sensor-dev-{domain}" for domain in ORDER]
    # One synth first, then every deploy from that same assembly, one stack at a time.
    assert steps[0].argv[1] == "synth" and "env=dev" in steps[0].argv
    for step in steps[1:]:
        assert step.argv[1] == "deploy"
        assert "--exclusively" in step.argv and "--all" not in step.argv
        assert step.argv[step.argv.index("--app") + 1] == "cdk.out/dev"
        assert step.argv[-1] == step.stack


def test_order_matches_the_app() -> None:
    # The opt-in LoadTest stack is deployed and destroyed on its own (make load-test-deploy).
    fields = [field for field in Platform.__dataclass_fields__ if field not in ("config", "load_test")]
    assert fields == [domain.lower() for domain in ORDER]


def test_prod_without_confirmation_stops_before_anything() -> None:
    with pytest.raises(DeployPlanError, match=r"make deploy ENV=prod CONFIRM_STATEFUL=Sensor-prod-Data"):
        build_plan(load_from_cdk_json("prod"))


def test_prod_with_the_stack_name_deploys_all_four_in_order() -> None:
    steps = build_plan(load_from_cdk_json("prod"), confirm_stateful="Sensor-prod-Data")
    assert deployed(steps) == [f"Sensor-prod-{domain}" for domain in ORDER]


@pytest.mark.parametrize("value", ["yes", "Sensor-dev-Data", "sensor-prod-data", "Sensor-prod-Service"])
def test_prod_with_a_wrong_confirmation_is_an_error(value: str) -> None:
    expected = rf"CONFIRM_STATEFUL='{value}' does not match.*expected Sensor-prod-Data"
    with pytest.raises(DeployPlanError, match=expected):
        build_plan(load_from_cdk_json("prod"), confirm_stateful=value)


def test_a_production_flag_in_any_environment_requires_confirmation(tmp_path: Path) -> None:
    cdk_json = json.loads((REPO_ROOT / "cdk.json").read_text())
    cdk_json["context"]["environments"]["dev"]["production"] = True
    cdk_json["context"]["environments"]["dev"].update(
        alarm_email="a@example.com",
        certificate_arn="arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
        account="123456789012",
    )
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps(cdk_json))
    try:
        config = load_from_cdk_json("dev", path)
    except Exception as error:  # the production rules may ask for more keys; then this test says so
        pytest.skip(f"dev cannot be turned into a production config here: {error}")
    with pytest.raises(DeployPlanError, match="CONFIRM_STATEFUL=Sensor-dev-Data"):
        build_plan(config)


def test_unknown_environment_is_a_clear_error_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", "--env", "staging"], runner=lambda argv: pytest.fail("nothing may run")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown environment 'staging'") and "Traceback" not in err


def test_cli_prod_without_confirmation_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["deploy", "--env", "prod"], is_interactive=lambda: False,
                runner=lambda argv: pytest.fail("nothing may run"))
    assert code == 2
    assert "Nothing was deployed" in capsys.readouterr().err


def test_cli_interactive_prompt_accepts_only_the_stack_name(capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[Sequence[str]] = []

    def runner(argv: Sequence[str]) -> int:
        ran.append(argv)
        return 0

    code = main(["deploy", "--env", "prod"], is_interactive=lambda: True, ask=lambda _: "y", runner=runner)
    assert code == 2
    assert ran == []
    assert main(["deploy", "--env", "prod"], is_interactive=lambda: True,
                ask=lambda _: "Sensor-prod-Data\n", runner=runner) == 0
    assert [argv[-1] for argv in ran[1:]] == [f"Sensor-prod-{domain}" for domain in ORDER]


def test_run_stops_at_the_first_failure_and_names_what_was_not_deployed() -> None:
    steps = build_plan(load_from_cdk_json("dev"))
    calls: list[str] = []
    messages: list[str] = []

    def runner(argv: Sequence[str]) -> int:
        calls.append(argv[-1])
        return 1 if argv[-1] == "Sensor-dev-Data" else 0

    assert run_plan(steps, runner=runner, echo=messages.append) == 1
    assert calls[-2:] == ["Sensor-dev-Network", "Sensor-dev-Data"]
    assert "not run: Sensor-dev-Service, Sensor-dev-Pipeline, Sensor-dev-Monitoring" in messages[-1]


def test_dry_run_prints_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", "--env", "dev", "--dry-run"], runner=lambda argv: pytest.fail("dry run")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("node_modules/.bin/cdk synth")
    assert lines[-1].endswith("--exclusively --require-approval broadening Sensor-dev-Monitoring")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_rollback_help_names_the_environment_resources(env: str) -> None:
    text = rollback_help(load_from_cdk_json(env))
    assert "runbooks/rollback.md" in text
    assert (
        f"ecs update-service --cluster sensor-{env} --service sensor-{env}-ingest "
        "--task-definition <previous-task-definition-arn>"
    ) in text
    assert (
        "ecs stop-service-deployment --service-deployment-arn <service-deployment-arn> --stop-type ROLLBACK"
    ) in text
    assert "deploy stop-deployment --deployment-id <deployment-id> --auto-rollback-enabled" in text
    assert f"lambda update-alias --function-name sensor-{env}-archiver --name live" in text
    assert "--region eu-west-1" in text


def test_rollback_help_uses_the_names_the_stacks_give(prod: Synthesized) -> None:
    """The synthesized Pipeline and Service stacks carry exactly the names the rollback commands use."""
    application = only(prod.pipeline, "AWS::CodeDeploy::Application")["Properties"]["ApplicationName"]
    groups = [group["Properties"]["DeploymentGroupName"]
              for group in prod.pipeline.find_resources("AWS::CodeDeploy::DeploymentGroup").values()]
    cluster = only(prod.service, "AWS::ECS::Cluster")["Properties"]["ClusterName"]
    service = only(prod.service, "AWS::ECS::Service")["Properties"]["ServiceName"]
    text = rollback_help(load_from_cdk_json("prod"))
    for group in groups:
        assert f"--application-name {application} --deployment-group-name {group}" in text
    assert f"--cluster {cluster} --service {service} " in text
    assert "--application-name sensor-prod-lambdas --deployment-group-name sensor-prod-archiver" in text


def test_run_executes_the_real_commands_in_order(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    fake_cdk = tmp_path / "cdk"
    fake_cdk.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake_cdk.chmod(0o755)
    code = main(["deploy", "--env", "prod", "--confirm-stateful", "Sensor-prod-Data", "--cdk", str(fake_cdk)])
    assert code == 0
    calls = log.read_text().splitlines()
    assert calls[0].startswith("synth ")
    assert [line.split()[-1] for line in calls[1:]] == [f"Sensor-prod-{domain}" for domain in ORDER]
