"""Secrets never reach a log line: bearer tokens, JWTs, client secrets, passwords, URL credentials.

`redact(text)` rewrites a finished log line (after JSON encoding, so `extra=` fields, exception
tracebacks and uvicorn's access lines are covered alike). The patterns are deliberately broad: a
false positive costs a `[REDACTED]` in a log, a miss costs a credential in CloudWatch for months.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A JWT anywhere (header.payload.signature, base64url; the header always starts with eyJ = '{"').
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Authorization header values, quoted or not.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    # key=value and "key": "value" for secret-looking keys (query strings, form bodies, JSON, reprs).
    (
        re.compile(
            r"""(?ix)
            (["']?\b(?:access_token|refresh_token|id_token|token|client_secret|secret|password|passwd|
               authorization|api_key|apikey|signing_key|jwt_signing_key)["']?
             \s*[:=]\s*["']?)
            ([^"'&\s,}]+)
            """
        ),
        rf"\1{REDACTED}",
    ),
    # user:password@ in URLs (database URLs, proxies).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]+:)([^@\s]+)@"), rf"\1{REDACTED}@"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
