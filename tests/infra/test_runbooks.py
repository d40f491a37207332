"""Runbooks: index and files agree, each has the standard sections, every `make` target they name exists,
and there is exactly one runbook per alarm of the catalogue (`runbooks/alarms/<name>.md`)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT

RUNBOOKS = REPO_ROOT / "runbooks"
INDEX = RUNBOOKS / "README.md"
SECTIONS = ("When to use", "What it means", "How to confirm", "Steps", "How to verify", "Escalation")
ALARMS = RUNBOOKS / "alarms"
# The alarm catalogue: CloudWatch alarms `sensor-<env>-<severity>-<name>`, one runbook each.
ALARM_CATALOGUE = {
    "critical": (
        "alb-target-5xx-rate", "alb-target-p99-latency", "alb-unhealthy-hosts", "alb-elb-5xx",
        "rds-free-storage-low", "msk-offline-partitions", "outbox-oldest-age", "dead-letter-backlog",
        "db-circuit-open",
    ),
    "warning": (
        "ecs-tasks-at-max", "ecs-cpu-high", "ecs-memory-high", "rds-cpu-high", "rds-connections-high",
        "rds-replica-lag", "msk-disk-used", "msk-under-replicated-partitions", "archiver-errors",
        "archiver-throttles", "archiver-offset-lag", "state-store-fallback", "state-store-throttled",
        "state-store-memory-high", "anomaly-rate", "waf-blocked-spike",
    ),
}
# Deployment guards (monitoring.catalogue.DEPLOYMENT_ALARMS): one runbook per kind of deployment.
DEPLOYMENT_RUNBOOKS = ("ecs-deployment-rollback", "lambda-deployment-rollback")
ALARM_RUNBOOKS = sorted(f"alarms/{path.name}" for path in ALARMS.glob("*.md"))
RUNBOOK_FILES = sorted(path.name for path in RUNBOOKS.glob("*.md") if path.name != "README.md") + ALARM_RUNBOOKS
LINK = r"\]\(([\w./-]+\.md)\)"


def indexed() -> set[str]:
    """Runbooks linked from the index (relative paths, e.g. `deploy.md`, `alarms/alb-elb-5xx.md`)."""
    return set(re.findall(LINK, INDEX.read_text()))


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z0-9-]*):", (REPO_ROOT / "Makefile").read_text(), flags=re.MULTILINE))


def test_every_indexed_runbook_exists() -> None:
    missing = sorted(name for name in indexed() if not (RUNBOOKS / name).is_file())
    assert not missing, f"runbooks/README.md links runbooks that do not exist: {missing}"


def test_every_runbook_is_in_the_index() -> None:
    assert RUNBOOK_FILES, "no runbooks found"
    unlisted = sorted(set(RUNBOOK_FILES) - indexed())
    assert not unlisted, f"add these runbooks to runbooks/README.md: {unlisted}"


def test_the_blue_green_runbooks_are_there() -> None:
    blue_green = {"deploy.md", "rollback.md", "stuck-deployment.md", "deploy-hook-failures.md"}
    assert blue_green <= set(RUNBOOK_FILES)
    assert "## Planned" not in INDEX.read_text()


def test_one_runbook_per_catalogued_alarm() -> None:
    expected = {f"alarms/{name}.md" for names in ALARM_CATALOGUE.values() for name in names}
    expected |= {f"alarms/{name}.md" for name in DEPLOYMENT_RUNBOOKS}
    assert set(ALARM_RUNBOOKS) == expected


@pytest.mark.parametrize(
    ("severity", "name"), [(severity, name) for severity, names in ALARM_CATALOGUE.items() for name in names]
)
def test_alarm_runbook_names_its_alarm(severity: str, name: str) -> None:
    text = (ALARMS / f"{name}.md").read_text()
    title = text.splitlines()[0]
    assert title.startswith("# ") and name in title, f"alarms/{name}.md: title must name {name}"
    assert f"`sensor-<env>-{severity}-{name}`" in text, f"alarms/{name}.md must name its alarm"


def test_index_groups_alarm_runbooks_by_severity() -> None:
    text = INDEX.read_text()
    critical, warning = text.split("### Critical", 1)[1].split("### Warning", 1)
    for severity, section in (("critical", critical), ("warning", warning.split("\n## ", 1)[0])):
        listed = set(re.findall(r"\]\(alarms/([\w-]+)\.md\)", section))
        assert listed == set(ALARM_CATALOGUE[severity]), f"{severity} section of runbooks/README.md"


@pytest.mark.parametrize("name", RUNBOOK_FILES)
def test_runbook_has_the_standard_sections(name: str) -> None:
    headings = re.findall(r"^##+ (.+)$", (RUNBOOKS / name).read_text(), flags=re.MULTILINE)
    for section in SECTIONS:
        assert section in headings, f"{name}: missing section '## {section}'"


@pytest.mark.parametrize("name", ["README.md", *RUNBOOK_FILES])
def test_make_targets_mentioned_in_runbooks_exist(name: str) -> None:
    text = (RUNBOOKS / name).read_text()
    mentioned = set(re.findall(r"\bmake ([a-z][a-z0-9-]*)\b", text))
    unknown = sorted(mentioned - make_targets())
    assert not unknown, f"{name} mentions make targets the Makefile does not have: {unknown}"


@pytest.mark.parametrize("name", RUNBOOK_FILES)
def test_runbook_links_to_other_runbooks_resolve(name: str) -> None:
    path = RUNBOOKS / name
    for target in re.findall(LINK, path.read_text()):
        assert (path.parent / target).is_file(), f"{name} links {target}, which does not exist"
