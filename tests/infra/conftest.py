"""Synthesize each environment once per test session and share the templates."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from cdk.app import Platform, build_app
from environments.config import EnvironmentConfig
from tests.conftest import REPO_ROOT


def committed_context() -> dict[str, Any]:
    """cdk.json context (environments and feature flags) plus committed lookups."""
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context.update(json.loads((REPO_ROOT / "cdk.context.json").read_text()))
    return context


def committed_environment(name: str) -> dict[str, Any]:
    """A deep copy of one environment's raw entry, for tests that break it on purpose."""
    return copy.deepcopy(committed_context()["environments"][name])


@dataclass
class Synthesized:
    app: cdk.App
    config: EnvironmentConfig
    platform: Platform
    templates: dict[str, Template]
    outdir: Path

    @property
    def network(self) -> Template:
        return self.templates["Network"]

    @property
    def data(self) -> Template:
        return self.templates["Data"]

    @property
    def service(self) -> Template:
        return self.templates["Service"]

    @property
    def pipeline(self) -> Template:
        return self.templates["Pipeline"]

    @property
    def load_test(self) -> Template:
        """Only while `load_test.enabled` (committed: dev)."""
        return self.templates["LoadTest"]


# No stack bundles its Lambda code in tests: the assets point at their source directories and keep
# the hash computed from their inputs. `make synth` bundles for real (pip, no Docker).
SKIP_BUNDLING = {"aws:cdk:bundling-stacks": []}


def synthesize(env_name: str, raw: dict[str, Any], outdir: Path) -> Synthesized:
    """Synthesize through the same entry point as `cdk synth` (cdk-nag included: a finding that
    is not acknowledged fails here), without bundling Lambda code."""
    context = committed_context()
    context["environments"] = {env_name: raw}
    context["env"] = env_name
    # The opt-in LoadTest stack too (cdk deploy leaves it out unless asked: `-c load_test=true`).
    context["load_test"] = True
    context.update(SKIP_BUNDLING)
    app = cdk.App(outdir=str(outdir), context=context)
    platform = build_app(app)
    config = platform.config
    assembly = app.synth()
    templates = {
        stack.stack_name.rsplit("-", 1)[1]: Template.from_json(
            assembly.get_stack_artifact(stack.artifact_id).template
        )
        for stack in platform.stacks
    }
    return Synthesized(app, config, platform, templates, outdir)


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize("dev", committed_environment("dev"), tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize("prod", committed_environment("prod"), tmp_path_factory.mktemp("cdk-prod"))


@pytest.fixture(params=["dev", "prod"])
def each_env(request: pytest.FixtureRequest) -> Synthesized:
    """Runs a test once per committed environment."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def synth_variant(tmp_path: Path) -> Callable[..., Synthesized]:
    """Synthesize a modified copy of an environment (costs a second or two per call)."""

    def make(env_name: str, mutate: Callable[[dict[str, Any]], None]) -> Synthesized:
        raw = committed_environment(env_name)
        mutate(raw)
        return synthesize(env_name, raw, tmp_path / "cdk.out")

    return make


def only(template: Template, resource_type: str) -> dict[str, Any]:
    """The single resource of `resource_type` (fails when there are none or several)."""
    resources = template.find_resources(resource_type)
    assert len(resources) == 1, f"expected one {resource_type}, found {sorted(resources)}"
    return next(iter(resources.values()))
