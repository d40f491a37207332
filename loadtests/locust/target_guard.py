"""A load test may only send its client secret to the platform it was configured for.

The Locust web UI's host field is editable, and every user starts with `POST /auth/token` carrying the
load-test client's secret: pointed at a host of someone's choosing, a run would hand the secret over.
So the configured target is fixed when the process starts (`LOADTEST_TARGET_URL`, which
`python -m loadtests.locust.run` and the LoadTest stack set, else the `--host` given on the command line) and
checked at three points, each before any request leaves:

- the web UI's start request (`POST /swarm`) with another host is refused with a message in the UI;
- `test_start` on every runner (master, worker, single process) refuses to run against another host;
- each user checks its host before its first request (the token), so a worker that somehow got
  another host from its master stops its users instead of logging in.

A process with no configured target refuses every run (fail closed).
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import urlsplit

TARGET_ENV = "LOADTEST_TARGET_URL"
DEFAULT_PORTS = {"http": 80, "https": 443}

log = logging.getLogger("loadtests")


class TargetNotAllowed(Exception):
    """The run's host is not the configured platform URL."""


def normalize(url: str | None) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) of an http(s) URL, lower-cased, default ports filled in; None if unusable."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname or port is None:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port, parts.path.rstrip("/")


def remember_configured_target(environment: Any) -> str | None:
    """Fix the configured target at start-up, before the web UI can change `environment.host`."""
    options = getattr(environment, "parsed_options", None)
    configured = os.environ.get(TARGET_ENV) or getattr(options, "host", None) or environment.host
    environment.loadtest_configured_target = configured
    return configured


def check(environment: Any, host: str | None) -> None:
    """Raise `TargetNotAllowed` (message meant for the UI and the log) unless `host` is the configured target."""
    configured = getattr(environment, "loadtest_configured_target", None)
    if normalize(configured) is None:
        raise TargetNotAllowed(
            f"no load-test target is configured: set {TARGET_ENV} (or --host) to the platform URL; "
            "refusing to send the load-test client's credentials anywhere"
        )
    if normalize(host) != normalize(configured):
        raise TargetNotAllowed(
            f"this load generator may only target {configured} (its configured platform URL); "
            f"refusing {host!r}: the users would send the load-test client's secret there"
        )


def install_web_ui_guard(environment: Any) -> None:
    """Refuse a start request from the web UI whose host field names another host (a message in the UI)."""
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return
    from flask import jsonify, request  # noqa: PLC0415 - Locust's web UI runs on Flask

    @web_ui.app.before_request
    def _refuse_other_hosts() -> Any:
        if request.method != "POST" or not request.path.rstrip("/").endswith("/swarm"):
            return None
        host = request.form.get("host") or environment.host
        try:
            check(environment, host)
        except TargetNotAllowed as refusal:
            log.error("load test refused: %s", refusal)
            return jsonify({"success": False, "message": str(refusal), "host": environment.host})
        return None
