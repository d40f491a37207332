"""Runbooks: index and files agree, each has the standard sections, every `make` target they name exists."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT

RUNBOOKS = REPO_ROOT / "runbooks"
INDEX = RUNBOOKS / "README.md"
SECTIONS = ("When to use", "What it means", "How to confirm", "Steps", "How to verify", "Escalation")
RUNBOOK_FILES = sorted(path.name for path in RUNBOOKS.glob("*.md") if path.name != "README.md")


def indexed() -> set[str]:
    """Runbooks linked from the index (the planned list holds names, not links)."""
    return set(re.findall(r"\]\(([\w.-]+\.md)\)", INDEX.read_text()))


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
    assert "## Planned" in INDEX.read_text()


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
    for target in re.findall(r"\]\(([\w.-]+\.md)\)", (RUNBOOKS / name).read_text()):
        assert (RUNBOOKS / target).is_file(), f"{name} links {target}, which does not exist"
