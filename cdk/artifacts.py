"""Files a deployment ships that are fetched where the build has network, never committed.

`RDS_CA_BUNDLE`: AWS's RDS CA bundle (`make rds-ca-bundle`), which the read-API Lambda bundle carries
for PostgreSQL `verify-full`; `cdk.preflight` refuses to deploy without it.
"""

from __future__ import annotations

from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
RDS_CA_BUNDLE = REPOSITORY_ROOT / "certs" / "rds-global-bundle.pem"
