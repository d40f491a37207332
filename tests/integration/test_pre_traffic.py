"""The CodeDeploy pre-traffic hook (lambda/pre_traffic): it invokes the version under deployment with
a synthetic event and reports Succeeded or Failed through PutLifecycleEventHookExecutionStatus.

The AWS clients are botocore Stubbers (moto's CodeDeploy has no lifecycle-hook API). The archiver's
synthetic event is also fed to the REAL archiver handler, to prove it is an event the archiver accepts.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from devstack.lambdas import LocalLambdaContext, load_handler, load_handler_module

pytestmark = pytest.mark.timeout(60)

hook = load_handler_module("pre_traffic")

REGION = "eu-west-1"
VERSION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:sensor-dev-archiver:7"
DEPLOYMENT_ID = "d-ABCDEF123"
EXECUTION_ID = "hook-execution-1"
EVENT = {"DeploymentId": DEPLOYMENT_ID, "LifecycleEventHookExecutionId": EXECUTION_ID}


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Stubber, Stubber]]:
    """Stubbed lambda and codedeploy clients in place of the hook's own; all stubs must be used."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(name, value)
    clients = {service: boto3.client(service, region_name=REGION) for service in ("lambda", "codedeploy")}
    monkeypatch.setattr(hook, "_clients", clients)
    with Stubber(clients["lambda"]) as lambda_stub, Stubber(clients["codedeploy"]) as codedeploy_stub:
        yield lambda_stub, codedeploy_stub
        lambda_stub.assert_no_pending_responses()
        codedeploy_stub.assert_no_pending_responses()


def configure(monkeypatch: pytest.MonkeyPatch, probe: str) -> None:
    monkeypatch.setenv("TARGET_FUNCTION_NAME", "sensor-dev-archiver")
    monkeypatch.setenv("CURRENT_VERSION", VERSION_ARN)
    monkeypatch.setenv("PROBE", probe)


def expect_invoke(stub: Stubber, payload: Any, *, function_error: str | None = None) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response: dict[str, Any] = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}
    if function_error:
        response["FunctionError"] = function_error
    stub.add_response(
        "invoke",
        response,
        {"FunctionName": VERSION_ARN, "InvocationType": "RequestResponse", "Payload": ANY},
    )


def expect_report(stub: Stubber, status: str) -> None:
    stub.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": EXECUTION_ID},
        {"deploymentId": DEPLOYMENT_ID, "lifecycleEventHookExecutionId": EXECUTION_ID, "status": status},
    )


ARCHIVED = {"written": 1, "dead_lettered": 0, "anomalies": 0, "objects": ["raw/..."], "dead_letters": []}
HEALTHY = {"statusCode": 200, "headers": {}, "body": json.dumps({"status": "ok", "version": "1"}),
           "isBase64Encoded": False}


@pytest.mark.parametrize(("probe", "answer"), [("archiver", ARCHIVED), ("read-api", HEALTHY)])
def test_a_healthy_version_is_reported_succeeded(
    stubs: tuple[Stubber, Stubber], monkeypatch: pytest.MonkeyPatch, probe: str, answer: dict[str, Any]
) -> None:
    lambda_stub, codedeploy_stub = stubs
    configure(monkeypatch, probe)
    expect_invoke(lambda_stub, answer)
    expect_report(codedeploy_stub, "Succeeded")
    assert hook.handler(EVENT, None)["status"] == "Succeeded"


def test_a_function_error_is_reported_failed(
    stubs: tuple[Stubber, Stubber], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lambda_stub, codedeploy_stub = stubs
    configure(monkeypatch, "archiver")
    expect_invoke(lambda_stub, {"errorMessage": "boom", "errorType": "RuntimeError"}, function_error="Unhandled")
    expect_report(codedeploy_stub, "Failed")
    result = hook.handler(EVENT, None)
    assert result["status"] == "Failed"
    assert "Unhandled function error" in result["reason"] and "boom" in result["reason"]
    assert any("Unhandled function error" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("probe", "answer", "why"),
    [
        pytest.param("archiver", {**ARCHIVED, "written": 0, "dead_lettered": 1}, "dead_lettered=1",
                     id="archiver dead-letters the valid reading"),
        pytest.param("archiver", b"not json", "not JSON", id="archiver answers garbage"),
        pytest.param("read-api", {**HEALTHY, "statusCode": 503}, "503", id="health answers 503"),
        pytest.param("read-api", {**HEALTHY, "body": '{"status": "starting"}'}, "starting",
                     id="health body not ok"),
        pytest.param("read-api", {**HEALTHY, "body": "<html>"}, "non-JSON body", id="health body not JSON"),
    ],
)
def test_an_unexpected_answer_is_reported_failed(
    stubs: tuple[Stubber, Stubber], monkeypatch: pytest.MonkeyPatch, probe: str, answer: Any, why: str
) -> None:
    lambda_stub, codedeploy_stub = stubs
    configure(monkeypatch, probe)
    expect_invoke(lambda_stub, answer)
    expect_report(codedeploy_stub, "Failed")
    result = hook.handler(EVENT, None)
    assert result["status"] == "Failed"
    assert why in result["reason"]


def test_an_invoke_that_raises_is_reported_failed_not_left_hanging(
    stubs: tuple[Stubber, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    lambda_stub, codedeploy_stub = stubs
    configure(monkeypatch, "read-api")
    lambda_stub.add_client_error("invoke", service_error_code="AccessDeniedException", http_status_code=403)
    expect_report(codedeploy_stub, "Failed")
    result = hook.handler(EVENT, None)
    assert result["status"] == "Failed" and "AccessDeniedException" in result["reason"]


def test_a_misconfigured_hook_fails_the_deployment_without_invoking(
    stubs: tuple[Stubber, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, codedeploy_stub = stubs
    configure(monkeypatch, "archiver")
    monkeypatch.delenv("CURRENT_VERSION")
    expect_report(codedeploy_stub, "Failed")
    assert "misconfigured" in hook.handler(EVENT, None)["reason"]


def test_the_synthetic_msk_event_is_archived_by_the_real_archiver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_DIR", str(tmp_path))
    monkeypatch.delenv("DATA_LAKE_BUCKET", raising=False)
    archiver = load_handler("archiver")
    event = hook.archiver_event()
    summary = archiver(json.loads(json.dumps(event)), LocalLambdaContext(function_name="sensor-dev-archiver"))

    hook.check_archiver(summary)  # what the hook would accept
    assert summary["written"] == 1 and summary["dead_lettered"] == 0
    # Outside the Glue table's projected years, under an obviously synthetic name; the same key on
    # every deployment.
    assert summary["objects"] == ["raw/year=2000/month=01/day=01/hour=00/deploy-canary-0-0-0.parquet"]
    table = pq.read_table(tmp_path / summary["objects"][0])
    (row,) = table.to_pylist()
    assert (row["id"], row["device_id"]) == (hook.SYNTHETIC_READING_ID, "deploy-canary")


def test_the_health_event_is_the_albs_get_of_read_health() -> None:
    event = hook.health_event()
    assert (event["httpMethod"], event["path"]) == ("GET", "/read/health")
    assert "elb" in event["requestContext"]
