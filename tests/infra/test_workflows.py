"""GitHub Actions workflows: they parse, trigger where they should, and deploy only through the Makefile."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(data, dict), f"{name} is not a YAML mapping"
    return data


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    return workflow.get("on", workflow.get(True))


def run_lines(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"] for step in job["steps"] if "uses" in step]


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_workflow_parses_and_pins_every_action(name: str) -> None:
    workflow = load(name)
    assert workflow["jobs"]
    for job in workflow["jobs"].values():
        assert job["runs-on"] == "ubuntu-latest"
        for action in uses(job):
            # owner/name@<40-hex commit SHA>: a tag can be moved, a commit cannot.
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action


def test_ci_runs_the_suite_on_pull_requests_and_main() -> None:
    workflow = load("ci.yml")
    on = triggers(workflow)
    assert "pull_request" in on
    assert on["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {"contents": "read"}
    (job,) = workflow["jobs"].values()
    assert "bash .ci/run" in run_lines(job)
    steps = {step.get("uses", "").split("@")[0]: step for step in job["steps"]}
    assert steps["actions/setup-python"]["with"]["python-version"] == "3.11"
    assert str(steps["actions/setup-node"]["with"]["node-version"]) == "20"
    cache = steps["actions/cache"]["with"]
    assert ".venv" in cache["path"] and "node_modules" in cache["path"]
    assert "constraints.txt" in cache["key"] and "package-lock.json" in cache["key"]


def test_deploy_runs_on_version_tags_with_oidc() -> None:
    workflow = load("deploy.yml")
    on = triggers(workflow)
    assert on == {"push": {"tags": ["v*"]}}
    assert workflow["permissions"] == {"id-token": "write", "contents": "read"}
    for job in workflow["jobs"].values():
        assert job["permissions"] == {"id-token": "write", "contents": "read"}
        (credentials,) = [
            step for step in job["steps"]
            if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
        ]
        assert credentials["with"]["role-to-assume"].startswith(("${{ vars.AWS_DEPLOY_ROLE_ARN_", "${{ vars.AWS_DIFF_ROLE_ARN_"))
        assert "aws-access-key-id" not in credentials["with"]  # OIDC only, no long-lived keys


def test_dev_deploys_first_then_prod_after_approval_with_explicit_confirmation() -> None:
    jobs = load("deploy.yml")["jobs"]
    dev, prod = jobs["dev"], jobs["prod"]
    assert "needs" not in dev
    # prod waits for dev's post-deploy verification and shows the approver the change first
    assert sorted(prod["needs"]) == ["dev", "prod-diff", "verify-dev"]
    assert prod["environment"] == "production"
    assert "environment" not in dev or dev["environment"] != "production"
    assert dev["steps"][-1]["run"].startswith("make deploy ENV=dev")
    assert any(line.startswith("make deploy ENV=prod CONFIRM_STATEFUL=") for line in run_lines(prod))
    assert prod["env"]["CONFIRM_STATEFUL"] == "Sensor-prod-Data"
    roles = {
        step["with"]["role-to-assume"]
        for job in (dev, prod) for step in job["steps"] if "role-to-assume" in step.get("with", {})
    }
    assert roles == {"${{ vars.AWS_DEPLOY_ROLE_ARN_DEV }}", "${{ vars.AWS_DEPLOY_ROLE_ARN_PROD }}"}


def test_workflows_call_only_existing_make_targets() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, flags=re.MULTILINE))
    for name in ("ci.yml", "deploy.yml"):
        for job in load(name)["jobs"].values():
            for line in run_lines(job):
                for target in re.findall(r"\bmake ([a-z][a-z0-9-]*)", line):
                    assert target in targets, f"{name}: make {target} is not a Makefile target"
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_deploy_jobs_use_the_makefile_targets() -> None:
    jobs = load("deploy.yml")["jobs"]
    for env, job in (("dev", jobs["dev"]), ("prod", jobs["prod"])):
        lines = run_lines(job)
        assert f"make diff ENV={env}" in lines
        assert any(line.startswith(f"make deploy ENV={env}") for line in lines)
        assert not any("cdk deploy" in line for line in lines), "deploy through make, never cdk directly"


def test_a_post_deploy_job_verifies_each_environment() -> None:
    jobs = load("deploy.yml")["jobs"]
    for env in ("dev", "prod"):
        job = jobs[f"verify-{env}"]
        assert job["needs"] == env
        assert any(line.startswith(f"make verify ENV={env}") and "--json" in line for line in run_lines(job))
    assert jobs["verify-prod"]["environment"] == "production"


def test_a_read_only_prod_diff_runs_before_the_approval() -> None:
    jobs = load("deploy.yml")["jobs"]
    diff = jobs["prod-diff"]
    assert "environment" not in diff  # runs without waiting for the approval
    assert "prod-diff" in jobs["prod"]["needs"] and jobs["prod"]["environment"] == "production"
    lines = "\n".join(run_lines(diff))
    assert "make diff ENV=prod" in lines and "make plan ENV=prod" in lines and "GITHUB_STEP_SUMMARY" in lines
    assert "make deploy" not in lines
    roles = [step["with"]["role-to-assume"] for step in diff["steps"] if "role-to-assume" in step.get("with", {})]
    assert roles == ["${{ vars.AWS_DIFF_ROLE_ARN_PROD }}"]
