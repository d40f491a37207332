"""Check AWS credentials before `cdk diff` / `cdk deploy`, so a missing login is one clear line.

    python -m cdk.preflight --env prod

Exits 0 when credentials resolve (and, if the environment pins an account, they belong to it),
2 otherwise, with the reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cdk.artifacts import RDS_CA_BUNDLE
from environments.config import CDK_JSON, ConfigError, load_from_cdk_json
from environments.credentials import PreflightError, caller_account

__all__ = ["PreflightError", "check"]


def check(env_name: str, cdk_json: Path = CDK_JSON, ca_bundle: Path | None = None) -> str:
    """Return the caller's account id, or raise `PreflightError` saying what to do."""
    account = caller_account(load_from_cdk_json(env_name, cdk_json))
    if ca_bundle is not None and not ca_bundle.is_file():
        # The read API verifies RDS's certificate against it (verify-full): never deploy without it.
        raise PreflightError(f"{ca_bundle} is missing: run `make rds-ca-bundle` (needs network to AWS)")
    return account


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
