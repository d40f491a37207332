"""Every CloudWatch alarm of both environments, wherever it is built, links a runbook that exists."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT
from tests.infra.conftest import Synthesized

ALARM_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")


def runbook_links(description: str, base_url: str) -> list[str]:
    """`alarms/<file>.md[#anchor]` for each runbook URL in an alarm description."""
    return re.findall(re.escape(base_url) + r"([\w.-]+\.md(?:#[\w-]+)?)", description)


def broken_link(link: str) -> str | None:
    path, _, anchor = link.partition("#")
    runbook = REPO_ROOT / "runbooks" / "alarms" / path
    if not runbook.is_file():
        return f"runbooks/alarms/{path} does not exist"
    if anchor and f'id="{anchor}"' not in runbook.read_text():
        return f"runbooks/alarms/{path} has no anchor {anchor!r}"
    return None


def test_every_alarm_links_an_existing_runbook(each_env: Synthesized) -> None:
    base_url = each_env.config.monitoring.runbook_base_url
    seen, problems = 0, []
    for stack, template in each_env.templates.items():
        for alarm_type in ALARM_TYPES:
            for logical_id, alarm in template.find_resources(alarm_type).items():
                seen += 1
                description = alarm["Properties"].get("AlarmDescription", "")
                links = runbook_links(description if isinstance(description, str) else "", base_url)
                if not links:
                    problems.append(f"{stack}/{logical_id}: no runbook link in {description!r}")
                problems += [f"{stack}/{logical_id}: {p}" for link in links if (p := broken_link(link))]
    assert problems == []
    assert seen > 25  # the catalogue's alarms plus the ECS and Lambda deployment guards


@pytest.mark.parametrize("link", ["nope.md", "ecs-deployment-rollback.md#no-such-alarm"])
def test_a_broken_link_is_reported(link: str) -> None:
    assert broken_link(link) is not None
