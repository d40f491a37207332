"""CodeDeploy BeforeAllowTraffic hook: invoke the version under deployment once with a synthetic event
and tell CodeDeploy whether it may receive traffic.

Contract (CodeDeploy Lambda hooks)
- Event: {"DeploymentId": "d-...", "LifecycleEventHookExecutionId": "..."}.
- Always ends with `codedeploy.put_lifecycle_event_hook_execution_status(..., status="Succeeded"|"Failed")`;
  without it CodeDeploy waits for the hook's timeout (1 h) and then fails the deployment anyway.
- Returns {"status": ..., "reason": ...} (for logs and tests; CodeDeploy ignores it).

Environment (set by cdk/components/lambda_deployment.py)
- TARGET_FUNCTION_NAME: the function being deployed (for logs).
- CURRENT_VERSION: the qualified ARN of the version under deployment, i.e. the synthesized
  `function.current_version`. CloudFormation updates this hook (new variable) before the alias whose
  UpdatePolicy starts the deployment, so it always names the version CodeDeploy is shifting to.
- PROBE: which synthetic event to send and what answer to expect:
  - `archiver`: an MSK event with ONE valid reading (contracts/reading.py wire format) on the
    synthetic topic `deploy-canary`. The reading is dated 2000-01-01, outside the lake table's
    projected years (2016-2050), so Athena never returns it; its key
    `raw/year=2000/month=01/day=01/hour=00/deploy-canary-0-0-0.parquet` is overwritten by every
    deployment. Expected answer: written == 1, dead_lettered == 0.
  - `read-api`: the ALB event of `GET /read/health` (the read API is served through the service's ALB).
    Expected: status 200 and a JSON body with "status": "ok".

Only the standard library and boto3 (both in the Lambda runtime): no bundling.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config

logger = logging.getLogger()
logger.setLevel(logging.INFO)

SUCCEEDED = "Succeeded"
FAILED = "Failed"

SYNTHETIC_TOPIC = "deploy-canary"
SYNTHETIC_DEVICE = "deploy-canary"
# The largest integer a JSON double carries exactly: far above any real reading id (readers
# deduplicate on `id`, so the synthetic reading must never share one with a real reading).
SYNTHETIC_READING_ID = 2**53 - 1
# Outside the Glue table's projected years (cdk/components/lake_catalog.py PROJECTED_YEARS).
SYNTHETIC_READING_TIME = "2000-01-01T00:00:00.000000Z"
SYNTHETIC_EVENT_SOURCE_ARN = "arn:aws:kafka:deploy-canary"


class ProbeFailed(Exception):
    """The version under deployment answered, but not as a healthy version would."""


def archiver_event(now: datetime | None = None) -> dict[str, Any]:
    """The documented MSK event source mapping event with one valid reading (wire format of
    contracts/reading.py, schema_version 1). The Kafka timestamp is `now`, so the archiver's lag
    metric stays near zero."""
    now = now or datetime.now(UTC)
    value = {
        "schema_version": 1,
        "id": SYNTHETIC_READING_ID,
        "device_id": SYNTHETIC_DEVICE,
        "tag": "deploy-canary",
        "timestamp": SYNTHETIC_READING_TIME,
        "value": 0.0,
        "is_anomaly": False,
        "z_score": None,
    }
    record = {
        "topic": SYNTHETIC_TOPIC,
        "partition": 0,
        "offset": 0,
        "timestamp": int(now.timestamp() * 1000),
        "timestampType": "CREATE_TIME",
        "key": base64.b64encode(SYNTHETIC_DEVICE.encode()).decode(),
        "value": base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode(),
        "headers": [],
    }
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": SYNTHETIC_EVENT_SOURCE_ARN,
        "bootstrapServers": "deploy-canary:9098",
        "records": {f"{SYNTHETIC_TOPIC}-0": [record]},
    }


def check_archiver(payload: Any) -> None:
    if not isinstance(payload, dict):
        raise ProbeFailed(f"expected the archive summary object, got {payload!r}")
    if payload.get("written") != 1 or payload.get("dead_lettered") != 0:
        raise ProbeFailed(
            f"expected written=1 dead_lettered=0, got written={payload.get('written')!r} "
            f"dead_lettered={payload.get('dead_lettered')!r}"
        )


def health_event(now: datetime | None = None) -> dict[str, Any]:
    """The Application Load Balancer event for `GET /read/health`: what the service's ALB sends the read
    API (its `/read` rule; the handler strips the prefix). `now` is unused: ALB events carry no time."""
    del now
    return {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:::targetgroup/deploy-canary/0"}},
        "httpMethod": "GET",
        "path": "/read/health",
        "queryStringParameters": {},
        "headers": {"host": "deploy-canary.invalid", "user-agent": "codedeploy-pre-traffic-hook",
                    "x-forwarded-proto": "https", "x-forwarded-port": "443", "x-forwarded-for": "127.0.0.1"},
        "body": "",
        "isBase64Encoded": False,
    }


def check_health(payload: Any) -> None:
    if not isinstance(payload, dict) or payload.get("statusCode") != 200:
        status = payload.get("statusCode") if isinstance(payload, dict) else payload
        raise ProbeFailed(f"expected HTTP 200 from GET /health, got {status!r}")
    body = payload.get("body") or ""
    if payload.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        raise ProbeFailed(f"GET /health answered a non-JSON body: {body[:200]!r}") from None
    if not isinstance(document, dict) or document.get("status") != "ok":
        raise ProbeFailed(f'expected {{"status": "ok"}} from GET /health, got {document!r}')


PROBES: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[Any], None]]] = {
    "archiver": (archiver_event, check_archiver),
    "read-api": (health_event, check_health),
}

# An archiver batch may run for up to 15 minutes (botocore's default read timeout is 60 s), and a
# synchronous invocation must not be retried behind the hook's back.
_CLIENT_CONFIG = {
    "lambda": Config(read_timeout=900, connect_timeout=10, retries={"total_max_attempts": 1}),
    "codedeploy": Config(retries={"mode": "standard", "total_max_attempts": 5}),
}
_clients: dict[str, Any] = {}


def client(service: str) -> Any:
    """One boto3 client per service and execution environment (tests replace them)."""
    if service not in _clients:
        _clients[service] = boto3.client(service, config=_CLIENT_CONFIG[service])
    return _clients[service]


def probe(version_arn: str, probe_name: str) -> str:
    """Invoke `version_arn` synchronously with the probe's event; the reason it is healthy, or raise
    ProbeFailed saying why not."""
    build_event, check = PROBES[probe_name]
    response = client("lambda").invoke(
        FunctionName=version_arn,
        InvocationType="RequestResponse",
        Payload=json.dumps(build_event()).encode(),
    )
    raw = response["Payload"].read()
    if response.get("FunctionError"):
        raise ProbeFailed(f"{response['FunctionError']} function error: {raw[:500]!r}")
    try:
        payload = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        raise ProbeFailed(f"the answer is not JSON: {raw[:200]!r}") from None
    check(payload)
    return f"{probe_name} probe answered as expected"


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    deployment_id = event["DeploymentId"]
    execution_id = event["LifecycleEventHookExecutionId"]
    function_name = os.environ.get("TARGET_FUNCTION_NAME", "?")
    version_arn = os.environ.get("CURRENT_VERSION", "")
    probe_name = os.environ.get("PROBE", "")
    try:
        if not version_arn or probe_name not in PROBES:
            raise ProbeFailed(
                f"misconfigured hook: CURRENT_VERSION={version_arn!r}, PROBE={probe_name!r} "
                f"(one of {sorted(PROBES)})"
            )
        reason = probe(version_arn, probe_name)
        status = SUCCEEDED
    except ProbeFailed as error:
        reason, status = str(error), FAILED
    except Exception as error:  # any failure to probe must fail the deployment, not leave it hanging
        reason, status = f"could not probe: {type(error).__name__}: {error}", FAILED
    log = logger.info if status == SUCCEEDED else logger.error
    log(json.dumps({
        "message": "pre-traffic hook", "status": status, "reason": reason, "deployment_id": deployment_id,
        "function": function_name, "version": version_arn, "probe": probe_name,
    }))
    client("codedeploy").put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
    )
    return {"status": status, "reason": reason}
