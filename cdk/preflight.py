"""Check AWS credentials before `cdk diff` / `cdk deploy`, so a missing login is one clear line.

    python -m cdk.preflight --env prod

Exits 0 when credentials resolve (and, if the environment pins an account, they belong to it),
2 otherwise, with the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from cdk.artifacts import RDS_CA_BUNDLE
from cdk.config import ENVIRONMENTS_CONTEXT_KEY, ConfigError, load_environment

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def check(env_name: str, cdk_json: Path = CDK_JSON, ca_bundle: Path | None = None) -> str:
    """Return the caller's account id, or raise `PreflightError` saying what to do."""
    context = json.loads(cdk_json.read_text())["context"]
    config = load_environment(context.get(ENVIRONMENTS_CONTEXT_KEY), env_name)
    try:
        identity = boto3.client("sts", region_name=config.region).get_caller_identity()
    except NoCredentialsError:
        raise PreflightError(
            "no AWS credentials found. Log in first (aws sso login / AWS_PROFILE=... / "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), then run the command again."
        ) from None
    except (BotoCoreError, ClientError) as error:
        raise PreflightError(f"AWS credentials could not be verified: {error}") from None
    account = identity["Account"]
    if ca_bundle is not None and not ca_bundle.is_file():
        # The read API verifies RDS's certificate against it (verify-full): never deploy without it.
        raise PreflightError(f"{ca_bundle} is missing: run `make rds-ca-bundle` (needs network to AWS)")
    if config.account is not None and account != config.account:
        raise PreflightError(
            f"credentials are for account {account}, but environment '{env_name}' deploys to "
            f"{config.account} (environments.{env_name}.account in cdk.json)"
        )
    return account


class PreflightError(RuntimeError):
    """Deploying cannot start; the message says why and what to do."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="environment name from cdk.json (dev, prod, ...)")
    parser.add_argument("--deploy", action="store_true",
                        help="also require what a deployment ships (the RDS CA bundle, make rds-ca-bundle)")
    args = parser.parse_args(argv)
    try:
        account = check(args.env, ca_bundle=RDS_CA_BUNDLE if args.deploy else None)
    except (PreflightError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"deploying '{args.env}' with credentials for account {account}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
