"""`make verify ENV=...`: does a deployed environment work end to end? One line per step, exit 0 only if all pass.

    python -m monitoring.verify --env dev [--json] [--lake-timeout 600] [--allow-alarm NAME ...]

Reads the stacks' outputs (CloudFormation DescribeStacks), then checks in order: /health and /ready
through the load balancer, a token for the smoke client (its secret from Secrets Manager), one canary
reading ingested and read back, the same reading in the data lake's raw/ partition of its hour (Parquet,
within --lake-timeout), the Glue table's partition projection resolving that object's partition, every
catalogue alarm `sensor-<env>-*` present and none in ALARM (unless --allow-alarm), every dashboard
present, and the archiver alias and the ECS service running the versions the stacks deployed.

Read-mostly: the one write is the canary reading (device `verify-canary`, tag temperature). AWS
credentials and endpoint come from the usual boto3 environment (AWS_PROFILE, AWS_ENDPOINT_URL for a
local moto server); VERIFY_URL stands for --url. Exit codes: 0 all passed, 1 a step failed, 2 bad flags or configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import boto3
import httpx

from environments.config import CDK_JSON, ConfigError, load_from_cdk_json
from environments.naming import EnvironmentNames
from monitoring import verify_checks as checks

DEVICE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
HTTP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class StepResult:
    name: str
    status: str  # pass | fail | skip
    seconds: float
    detail: str


def run(ctx: checks.Context, steps: Sequence[checks.StepSpec] = checks.STEPS,
        on_result: Callable[[StepResult], None] = lambda _: None) -> list[StepResult]:
    """Run the steps in order; a step whose prerequisite did not pass is skipped and says so."""
    results: dict[str, StepResult] = {}
    for step in steps:
        started = time.monotonic()
        needed = results.get(step.needs) if step.needs else None
        if needed is not None and needed.status != "pass":
            result = StepResult(step.name, "skip", 0.0, f"needs {step.needs}, which did not pass")
        else:
            try:
                result = StepResult(step.name, "pass", 0.0, step.check(ctx))
            except checks.Skipped as why:
                result = StepResult(step.name, "skip", 0.0, f"skipped: {why}")
            except checks.CheckFailed as why:
                result = StepResult(step.name, "fail", 0.0, str(why))
            except Exception as error:  # an unexpected answer is a failed step, not a traceback
                result = StepResult(step.name, "fail", 0.0, f"{type(error).__name__}: {error}")
            result = StepResult(result.name, result.status, round(time.monotonic() - started, 3), result.detail)
        results[step.name] = result
        on_result(result)
    return list(results.values())


def first_failure(results: Sequence[StepResult]) -> str | None:
    return next((r.name for r in results if r.status == "fail"), None)


def passed(results: Sequence[StepResult]) -> bool:
    """All passed; a skip counts only when it is an explicit 'skipped:' (not applicable), never 'needs ...'."""
    return all(r.status == "pass" or (r.status == "skip" and r.detail.startswith("skipped:")) for r in results)


def format_line(result: StepResult) -> str:
    return f"{result.status.upper():4}  {result.name:<17} {result.seconds:7.2f}s  {result.detail}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monitoring.verify", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="environment name from cdk.json (dev, prod, ...)")
    parser.add_argument("--cdk-json", type=Path, default=CDK_JSON, help="configuration (default: cdk.json)")
    parser.add_argument("--region", help="AWS region (default: the environment's region)")
    parser.add_argument("--url", default=os.environ.get("VERIFY_URL") or None,
                        help="base URL of the service instead of the LoadBalancerUrl output, e.g. the DNS name "
                             "the certificate covers (default: $VERIFY_URL)")
    parser.add_argument("--lake-timeout", type=float, default=600.0,
                        help="seconds to wait for the canary in the data lake (default 600)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="seconds between lake polls (default 5)")
    parser.add_argument("--allow-alarm", action="append", default=[], metavar="NAME",
                        help="an alarm allowed to be in ALARM (full name sensor-<env>-...; repeatable)")
    parser.add_argument("--device-id", default="verify-canary", help="device id of the canary reading")
    parser.add_argument("--json", action="store_true", help="print one JSON document (for CI) instead of lines")
    return parser


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.lake_timeout > 0:
        parser.error(f"--lake-timeout must be a positive number of seconds, got {args.lake_timeout:g}")
    if not 0 < args.poll_interval <= args.lake_timeout:
        parser.error(f"--poll-interval must be positive and at most --lake-timeout, got {args.poll_interval:g}")
    if args.url is not None and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?/?", args.url):
        parser.error(f"--url must be http(s)://host[:port], got {args.url!r}")
    if not DEVICE_ID.fullmatch(args.device_id):
        parser.error(f"--device-id must match {DEVICE_ID.pattern}, got {args.device_id!r}")
    prefix = EnvironmentNames(args.env).alarm_prefix
    wrong = [name for name in args.allow_alarm if not name.startswith(prefix)]
    if wrong:
        parser.error(f"--allow-alarm takes full alarm names starting with {prefix!r}, got {', '.join(wrong)}")
    if not args.cdk_json.is_file():
        parser.error(f"--cdk-json: no such file {args.cdk_json}")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _validate(parser, args)
    try:
        config = load_from_cdk_json(args.env, args.cdk_json)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    session = boto3.session.Session(region_name=args.region or config.region)
    with httpx.Client(timeout=HTTP_TIMEOUT_SECONDS) as http:
        ctx = checks.Context(config=config, aws=session.client, http=http, base_url=args.url,
                             device_id=args.device_id, lake_timeout=args.lake_timeout,
                             poll_interval=args.poll_interval, allowed_alarms=frozenset(args.allow_alarm))
        if not args.json:
            print(f"verifying environment '{config.name}' in {session.region_name}", flush=True)
        results = run(ctx, on_result=(lambda _: None) if args.json else lambda r: print(format_line(r), flush=True))
    ok, failed = passed(results), first_failure(results)
    if args.json:
        print(json.dumps({"env": config.name, "region": session.region_name, "ok": ok, "failed_step": failed,
                          "steps": [asdict(r) for r in results]}, indent=2))
    else:
        print("all checks passed" if ok else f"FAILED at step {failed or '?'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
