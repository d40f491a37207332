"""Deploy an environment's stacks one at a time, in dependency order, with a gate on the stateful stack.

    python -m cdk.deploy_plan deploy --env prod --confirm-stateful Sensor-prod-Data
    python -m cdk.deploy_plan deploy --env dev --dry-run        # print the commands only
    python -m cdk.deploy_plan rollback-help --env prod          # print the rollback commands

`make deploy ENV=...` runs the `deploy` command after the credentials preflight. The plan is:

1. `cdk synth` once into `cdk.out/<env>/` (cdk-nag runs; a finding stops here, before any deploy);
2. `cdk deploy --app cdk.out/<env> --exclusively <stack>` for Network, Data, Service, Pipeline,
   Monitoring, in that order, so every stack is deployed from the same synthesized assembly and `--exclusively`
   keeps CDK from deploying a dependency (the Data stack) implicitly.

In a production environment (`production: true` in cdk.json) the stateful Data stack must be
confirmed by its name, `--confirm-stateful Sensor-<env>-Data` (`CONFIRM_STATEFUL=...` in make), or
by typing the name at an interactive prompt. Without it nothing runs at all: the command stops
before the synth, with the exact command to use. A different value is an error too.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from environments.config import CDK_JSON, ConfigError, EnvironmentConfig, load_from_cdk_json
from environments.naming import EnvironmentNames

DEFAULT_CDK = "node_modules/.bin/cdk"

REQUIRE_APPROVAL_VALUES = ("never", "any-change", "broadening")


class DeployPlanError(ValueError):
    """The deployment must not start; the message says why and what to run instead."""


@dataclass(frozen=True)
class Step:
    """One CLI invocation of the plan."""

    description: str
    argv: tuple[str, ...]
    stack: str | None = None

    def shell(self) -> str:
        return shlex.join(self.argv)


def stack_names(config: EnvironmentConfig) -> list[str]:
    """Stack names in deployment order: every stack consumes outputs of the ones before it (cdk/app.py)."""
    return EnvironmentNames(config.name).stacks()


def stateful_stacks(config: EnvironmentConfig) -> list[str]:
    return EnvironmentNames(config.name).stateful_stacks


def check_confirmation(config: EnvironmentConfig, confirm_stateful: str | None) -> None:
    """Raise unless a production environment's stateful stack was confirmed by its exact name."""
    if not config.production:
        return
    (expected,) = stateful_stacks(config)
    confirm = (confirm_stateful or "").strip()
    if not confirm:
        raise DeployPlanError(
            f"environment '{config.name}' is production: deploying the stateful stack {expected} "
            f"(database, MSK, data-lake buckets) needs an explicit confirmation. Nothing was deployed. "
            f"Run: make deploy ENV={config.name} CONFIRM_STATEFUL={expected}"
        )
    if confirm != expected:
        raise DeployPlanError(
            f"CONFIRM_STATEFUL={confirm!r} does not match the stateful stack of environment "
            f"'{config.name}': expected {expected}. Nothing was deployed."
        )


def build_plan(
    config: EnvironmentConfig,
    *,
    confirm_stateful: str | None = None,
    cdk: str = DEFAULT_CDK,
    out_dir: str | None = None,
    require_approval: str = "broadening",
) -> list[Step]:
    """The ordered CLI invocations that deploy `config`'s stacks; raises before any of them is due."""
    if require_approval not in REQUIRE_APPROVAL_VALUES:
        raise DeployPlanError(
            f"require-approval must be one of {', '.join(REQUIRE_APPROVAL_VALUES)}, got {require_approval!r}"
        )
    check_confirmation(config, confirm_stateful)
    assembly = out_dir or f"cdk.out/{config.name}"
    steps = [
        Step(
            description=f"synthesize '{config.name}' into {assembly} (cdk-nag runs)",
            argv=(cdk, "synth", "--no-notices", "-c", f"env={config.name}", "--quiet", "-o", assembly),
        )
    ]
    for stack in stack_names(config):
        steps.append(
            Step(
                description=f"deploy {stack}",
                argv=(
                    cdk, "deploy", "--no-notices", "--app", assembly, "--exclusively",
                    "--require-approval", require_approval, stack,
                ),
                stack=stack,
            )
        )
    return steps


def rollback_help(config: EnvironmentConfig) -> str:
    """The exact rollback commands for one environment, with <placeholders> for what only AWS knows."""
    env, region = config.name, config.region
    names = EnvironmentNames(env)
    cluster, service = names.ecs_cluster, names.ingest_service
    aws = f"aws --region {region}"
    # CodeDeploy application and deployment groups as cdk/stacks/pipeline.py names them.
    application = names.lambda_application
    functions = [names.archiver_function]
    if config.pipeline.read_api_enabled:
        functions.append(names.read_api_function)
    lines = [
        f"Rollback commands for environment '{env}' (region {region}). "
        "Full procedure, checks and escalation: runbooks/rollback.md",
        "",
        f"ECS service {service} (cluster {cluster}), ECS-native blue/green",
        "  A. A deployment is still in progress (PENDING / IN_PROGRESS): stop it with a rollback",
        f"     {aws} ecs list-service-deployments --cluster {cluster} --service {service} "
        "--status PENDING IN_PROGRESS",
        f"     {aws} ecs stop-service-deployment --service-deployment-arn <service-deployment-arn> "
        "--stop-type ROLLBACK",
        "  B. The deployment completed and the new revision is bad: deploy the previous task definition",
        f"     {aws} ecs describe-services --cluster {cluster} --services {service} "
        "--query 'services[0].taskDefinition'",
        f"     {aws} ecs list-task-definitions --family-prefix <task-definition-family> --sort DESC "
        "--max-items 5",
        f"     {aws} ecs update-service --cluster {cluster} --service {service} "
        "--task-definition <previous-task-definition-arn>",
        "     (B starts a new blue/green deployment; revert the commit afterwards, or the next",
        "      make deploy rolls the bad revision out again.)",
        "",
        "Lambda functions " + ", ".join(functions) + " (alias live)",
        "  C. A CodeDeploy deployment of the alias is in progress: stop it with a rollback",
        f"     (application {application}, one deployment group per function, named like the function)",
    ]
    for function in functions:
        lines.append(
            f"     {aws} deploy list-deployments --application-name {application} "
            f"--deployment-group-name {function} --include-only-statuses InProgress"
        )
    lines += [
        f"     {aws} deploy stop-deployment --deployment-id <deployment-id> --auto-rollback-enabled",
        "  D. No deployment in progress: point the alias live back at the previous version",
    ]
    for function in functions:
        lines += [
            f"     {aws} lambda get-alias --function-name {function} --name live",
            f"     {aws} lambda list-versions-by-function --function-name {function} "
            "--query 'Versions[-5:].[Version,LastModified]'",
            f"     {aws} lambda update-alias --function-name {function} --name live "
            "--function-version <previous-version> --routing-config '{\"AdditionalVersionWeights\":{}}'",
        ]
    lines += ["", "Then verify as in runbooks/rollback.md (How to verify)."]
    return "\n".join(lines)


def run_plan(
    steps: Sequence[Step],
    *,
    runner: Callable[[Sequence[str]], int] | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Run the steps in order; stop at the first failure and return its exit code."""
    run = runner or (lambda argv: subprocess.run(list(argv), check=False).returncode)  # noqa: S603
    for number, step in enumerate(steps, start=1):
        echo(f"==> [{number}/{len(steps)}] {step.description}: {step.shell()}")
        code = run(step.argv)
        if code != 0:
            remaining = [s.stack for s in steps[number:] if s.stack]
            echo(
                f"error: step {number} failed (exit {code}); not run: "
                + (", ".join(remaining) if remaining else "nothing")
            )
            return code
    echo("deploy finished: " + ", ".join(s.stack for s in steps if s.stack))
    return 0


def _prompt_confirmation(config: EnvironmentConfig, ask: Callable[[str], str]) -> str:
    (expected,) = stateful_stacks(config)
    return ask(
        f"'{config.name}' is production. Type the stateful stack's name ({expected}) to deploy it: "
    )


def main(
    argv: list[str] | None = None,
    *,
    cdk_json: Path = CDK_JSON,
    is_interactive: Callable[[], bool] | None = None,
    ask: Callable[[str], str] = input,
    runner: Callable[[Sequence[str]], int] | None = None,
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    deploy = commands.add_parser("deploy", help="deploy the stacks in order (stops at the first failure)")
    deploy.add_argument("--env", required=True, help="environment name from cdk.json (dev, prod, ...)")
    deploy.add_argument("--confirm-stateful", default=None, help="the stateful stack's name (production)")
    deploy.add_argument("--cdk", default=DEFAULT_CDK, help="path of the pinned CDK CLI")
    deploy.add_argument("--out", default=None, help="cloud assembly directory (default cdk.out/<env>)")
    deploy.add_argument("--require-approval", default="broadening", choices=REQUIRE_APPROVAL_VALUES)
    deploy.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    rollback = commands.add_parser("rollback-help", help="print the rollback commands of an environment")
    rollback.add_argument("--env", required=True, help="environment name from cdk.json (dev, prod, ...)")
    args = parser.parse_args(argv)

    try:
        config = load_from_cdk_json(args.env, cdk_json)
        if args.command == "rollback-help":
            print(rollback_help(config))
            return 0
        confirm = args.confirm_stateful
        interactive = (is_interactive or sys.stdin.isatty)()
        if config.production and not (confirm or "").strip() and interactive and not args.dry_run:
            try:
                confirm = _prompt_confirmation(config, ask)
            except EOFError:
                confirm = None
        steps = build_plan(
            config, confirm_stateful=confirm, cdk=args.cdk, out_dir=args.out,
            require_approval=args.require_approval,
        )
    except (ConfigError, DeployPlanError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        for step in steps:
            print(step.shell())
        return 0
    return run_plan(steps, runner=runner)


if __name__ == "__main__":
    sys.exit(main())
