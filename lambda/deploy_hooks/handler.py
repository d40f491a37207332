"""ECS blue/green lifecycle hook: smoke-tests the green tasks through the ALB test listener.

Owns the hook contract and the retry bound; the checks themselves are in smoke_checks.py.

Contract relied on (aws-cdk-lib 2.275 aws-ecs README "ECS Native Blue/Green Deployment" for the
wiring; AWS ECS developer guide "Lambda hooks for Amazon ECS service deployments" and "Lifecycle hooks
for Amazon ECS service deployments" for the payload and the answer):
- event: `executionId`, `lifecycleStage` (here POST_TEST_TRAFFIC_SHIFT: green holds 100 % of the test
  traffic), `resourceArn`, `executionDetails` {`serviceArn`, `targetServiceRevisionArn`,
  `testTrafficWeights`, `productionTrafficWeights`}, and `hookDetails` when the previous answer
  carried some (ECS hands them back on the next invocation).
- answer: {"hookStatus": "SUCCEEDED" | "FAILED" | "IN_PROGRESS"}; with IN_PROGRESS optionally
  `callBackDelay` (seconds, default 30) and `hookDetails` (state for the next invocation). FAILED,
  an invalid answer or an error of the function roll the deployment back.

Retry bound: "not ready yet" (no answer, or 5xx on /health or /ready) answers IN_PROGRESS until
MAX_ATTEMPTS invocations or MAX_WAIT_SECONDS since the first attempt of this executionId, whichever
comes first, then FAILED. The first-attempt time and count travel in `hookDetails` and, as a fallback
for a warm function, in memory keyed by executionId.

Environment: TEST_BASE_URL (http(s)://<alb dns>:<test port>), SMOKE_CLIENT_ID, and SMOKE_CLIENT_SECRET
(local) or SMOKE_CLIENT_SECRET_ARN (a Secrets Manager secret, JSON with `client_secret` or plain,
fetched once per execution environment); optional CALLBACK_DELAY_SECONDS (30), MAX_ATTEMPTS (20),
MAX_WAIT_SECONDS (600), REQUEST_TIMEOUT_SECONDS (5), TLS_SERVER_NAME (the name the certificate covers:
the hook dials the ALB's own DNS name but sends this name as SNI and checks the certificate against it;
verification is never turned off),
SMOKE_STAGES (POST_TEST_TRAFFIC_SHIFT; other stages succeed without checks).

Every step is logged as one JSON line on stdout (CloudWatch Logs), with the execution id and why it
passed or failed.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import smoke_checks

FIRST_ATTEMPT_KEY = "smokeFirstAttemptAt"
ATTEMPTS_KEY = "smokeAttempts"

# executionId -> (first attempt epoch seconds, attempts so far): a warm function's memory.
_ATTEMPTS: dict[str, tuple[float, int]] = {}


def log(**fields: Any) -> None:
    """One JSON line per step (stdout is the function's log stream)."""
    record = {"time": datetime.now(UTC).isoformat(), "logger": "deploy_hooks", **fields}
    sys.stdout.write(json.dumps(record, default=str) + "\n")
    sys.stdout.flush()


def _int_env(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@lru_cache(maxsize=1)
def _client_secret() -> str:
    """The smoke client's secret: from the environment locally, from Secrets Manager in AWS."""
    if "SMOKE_CLIENT_SECRET" in os.environ:
        return os.environ["SMOKE_CLIENT_SECRET"]
    import boto3  # noqa: PLC0415 - in the Lambda runtime; never needed locally

    value = boto3.client("secretsmanager").get_secret_value(
        SecretId=os.environ["SMOKE_CLIENT_SECRET_ARN"]
    )["SecretString"]
    try:
        return json.loads(value)["client_secret"]
    except (ValueError, KeyError, TypeError):
        return value


def _ssl_context() -> ssl.SSLContext:
    """Chain and host name always verified (the name is TLS_SERVER_NAME when set, else the URL's host)."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _attempt(event: dict[str, Any]) -> tuple[float, int]:
    """(first attempt time, number of this attempt) for the event's execution."""
    execution_id = str(event.get("executionId", ""))
    details = event.get("hookDetails") if isinstance(event.get("hookDetails"), dict) else {}
    now = time.time()
    first, attempts = now, 0
    if FIRST_ATTEMPT_KEY in details:
        first, attempts = float(details[FIRST_ATTEMPT_KEY]), int(details.get(ATTEMPTS_KEY, 0))
    if execution_id in _ATTEMPTS:
        remembered_first, remembered_attempts = _ATTEMPTS[execution_id]
        first, attempts = min(first, remembered_first), max(attempts, remembered_attempts)
    attempts += 1
    _ATTEMPTS[execution_id] = (first, attempts)
    return first, attempts


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    execution_id = event.get("executionId")
    stage = event.get("lifecycleStage")
    details = event.get("executionDetails") or {}
    common = {"execution_id": execution_id, "lifecycle_stage": stage,
              "target_revision": details.get("targetServiceRevisionArn")}

    smoke_stages = os.environ.get("SMOKE_STAGES", "POST_TEST_TRAFFIC_SHIFT").split(",")
    if stage not in smoke_stages:
        log(**common, step="hook", outcome="SUCCEEDED", reason=f"no smoke test at stage {stage}")
        return {"hookStatus": "SUCCEEDED"}

    base_url = os.environ.get("TEST_BASE_URL", "")
    if urlsplit(base_url).scheme not in ("http", "https"):
        log(**common, step="hook", outcome="FAILED", reason=f"TEST_BASE_URL {base_url!r} is not http(s)")
        return {"hookStatus": "FAILED"}

    first, attempt = _attempt(event)
    elapsed = time.time() - first
    log(**common, step="start", attempt=attempt, elapsed_seconds=round(elapsed, 1), base_url=base_url,
        test_traffic_weights=details.get("testTrafficWeights"))
    result = smoke_checks.run(
        base_url,
        os.environ["SMOKE_CLIENT_ID"],
        _client_secret(),
        log=lambda **fields: log(**common, attempt=attempt, **fields),
        timeout=float(_int_env("REQUEST_TIMEOUT_SECONDS", 5)),
        ssl_context=_ssl_context() if base_url.startswith("https") else None,
        server_name=os.environ.get("TLS_SERVER_NAME") or None,
    )

    if result.verdict == "passed":
        status: dict[str, Any] = {"hookStatus": "SUCCEEDED"}
    elif result.verdict == "failed":
        status = {"hookStatus": "FAILED"}
    else:
        max_attempts = _int_env("MAX_ATTEMPTS", 20)
        max_wait = _int_env("MAX_WAIT_SECONDS", 600)
        delay = _int_env("CALLBACK_DELAY_SECONDS", 30)
        if attempt >= max_attempts or elapsed + delay > max_wait:
            result.reason = (f"still not ready after {attempt} attempts in {round(elapsed)} s "
                             f"(bound: {max_attempts} attempts, {max_wait} s): {result.reason}")
            status = {"hookStatus": "FAILED"}
        else:
            status = {"hookStatus": "IN_PROGRESS", "callBackDelay": delay,
                      "hookDetails": {FIRST_ATTEMPT_KEY: first, ATTEMPTS_KEY: attempt}}
    if status["hookStatus"] != "IN_PROGRESS":
        _ATTEMPTS.pop(str(execution_id or ""), None)
    log(**common, step="hook", attempt=attempt, outcome=status["hookStatus"], reason=result.reason,
        checks=result.steps)
    return status
