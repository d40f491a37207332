"""runbooks/first-deploy.md: indexed, and one concrete check (commands + what to do when not good) for each
behaviour the offline tests could not prove (issue 18's list)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT

RUNBOOK = REPO_ROOT / "runbooks" / "first-deploy.md"
# Each unproven behaviour and a phrase its checklist item must contain.
UNPROVEN = {
    "ECS passes hookDetails back on re-invocation": "`hookDetails`",
    "the test listener reached through the NAT gateways": "through the NAT gateways",
    "the CodeDeploy managed policy's coverage": "AWSCodeDeployRoleForLambdaLimited",
    "MSK per-broker metric dimensions": "`Broker ID`",
    "the WAF Rule=ALL metric": "`Rule=ALL`",
    "Lambda OffsetLag": "`OffsetLag`",
    "the image build": "image build",
    "Cognito in front of the Locust UI": "Cognito stands in front of the Locust UI",
}


def checklist_items() -> list[str]:
    text = RUNBOOK.read_text().split("### Checklist", 1)[1].split("\n## ", 1)[0]
    return re.split(r"\n(?=\d+\. \*\*)", text)[1:]


def test_the_runbook_is_indexed_and_covers_the_first_deploy_steps() -> None:
    assert "](first-deploy.md)" in (REPO_ROOT / "runbooks" / "README.md").read_text()
    text = RUNBOOK.read_text()
    for step in ("cdk bootstrap", "SmokeClientSecretArn", "secret_sha256", "make verify ENV=<env>",
                 "make cost ENV=<env>", "Sensor-<env>-Network", "-Monitoring"):
        assert step in text, step


@pytest.mark.parametrize("behaviour", UNPROVEN)
def test_each_unproven_behaviour_has_one_concrete_check(behaviour: str) -> None:
    matching = [item for item in checklist_items() if UNPROVEN[behaviour] in item.split("\n", 1)[0]]
    assert len(matching) == 1, f"no single checklist item for: {behaviour}"
    item = matching[0]
    assert "```bash" in item and ("aws " in item or "curl " in item), f"{behaviour}: no command to run"
    assert "Good:" in item and "Not good:" in item, f"{behaviour}: say what good looks like and what to do if not"
