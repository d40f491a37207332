"""Authentication and rate limiting: JWT bearer tokens for machine clients and a per-client leaky bucket.

`install_security(app, settings)` attaches the service container (app/container.py) with the token
service and the limiter; `require_scope("ingest")` protects a route; `app.api.auth.router` serves
`POST /auth/token`.
"""

from app.security.dependencies import install_security, require_scope
from app.security.ratelimit import Decision, LeakyBucketLimiter
from app.security.tokens import Principal, TokenService

__all__ = [
    "Decision",
    "LeakyBucketLimiter",
    "Principal",
    "TokenService",
    "install_security",
    "require_scope",
]
