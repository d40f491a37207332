"""Shared test settings: the repository root, the local environment name and quiet jsii."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# The service has no default environment name (fail closed, docs/security.md): the test session is
# `local`, set here at import so every Settings(...) and every app subprocess inherits it.
os.environ["APP_ENV"] = "local"
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

pytest_plugins = ["tests.support.services", "tests.support.app"]
