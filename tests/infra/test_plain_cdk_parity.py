"""`cdk deploy --all -c env=dev` deploys what `make deploy` deploys: the opt-in LoadTest stack only
with `-c load_test=true` (what make load-test-deploy passes)."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from cdk.app import build_app
from cdk.deploy_plan import stack_names
from environments.config import ConfigError
from tests.infra.conftest import SKIP_BUNDLING, committed_context


def _stacks(**extra: object) -> list[str]:
    app = cdk.App(context={**committed_context(), "env": "dev", **SKIP_BUNDLING, **extra})
    return [stack.stack_name for stack in build_app(app).stacks]


def test_plain_cdk_app_holds_exactly_the_make_deploy_stacks() -> None:
    platform_stacks = _stacks()
    assert "Sensor-dev-LoadTest" not in platform_stacks
    assert platform_stacks == stack_names(build_app(cdk.App(context={**committed_context(), "env": "dev",
                                                                     **SKIP_BUNDLING})).config)


@pytest.mark.parametrize("flag", ["true", True])
def test_load_test_stack_joins_only_when_asked(flag: object) -> None:
    assert _stacks(load_test=flag)[-1] == "Sensor-dev-LoadTest"


def test_a_wrong_flag_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="load_test must be true or false"):
        _stacks(load_test="yes")
