"""Do the caller's AWS credentials resolve, and do they belong to the environment's pinned account?

Used before `cdk diff`/`cdk deploy` (cdk/preflight.py) and before the on-call tools read CloudWatch
(monitoring/watch.py, load_test_report.py), so a missing login is one clear line, not a traceback.
"""

from __future__ import annotations

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from environments.config import EnvironmentConfig


class PreflightError(RuntimeError):
    """The command cannot start; the message says why and what to do."""


def caller_account(config: EnvironmentConfig) -> str:
    """Return the caller's account id, or raise `PreflightError` saying what to do."""
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
    if config.account is not None and account != config.account:
        raise PreflightError(
            f"credentials are for account {account}, but environment '{config.name}' deploys to "
            f"{config.account} (environments.{config.name}.account in cdk.json)"
        )
    return account
