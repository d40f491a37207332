"""The app's log lines never carry a credential: redaction of the finished JSON line."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from app.observability.logging import JsonFormatter
from app.observability.redaction import REDACTED, redact

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzaW11bGF0b3IifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f'127.0.0.1:5000 - "GET /dashboard?token={JWT} HTTP/1.1" 200', JWT),
        (f"Authorization: Bearer {JWT}", JWT),
        ("Bearer opaque-token-value-123", "opaque-token-value-123"),
        ('{"client_id": "fleet", "client_secret": "s3cr3t-value"}', "s3cr3t-value"),
        ("POST /auth/token?client_id=x&client_secret=s3cr3t-value&scope=read", "s3cr3t-value"),
        ("connect postgresql+asyncpg://sensor_admin:p%40ss@db.internal:5432/sensors", "p%40ss"),
        ("{'password': 'hunter2hunter2'}", "hunter2hunter2"),
    ],
)
def test_credentials_are_redacted(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted and REDACTED in redacted


def test_ordinary_words_survive() -> None:
    text = "token expired for client fleet; 3 tokens issued; password policy checked"
    assert redact(text) == text


def test_every_json_log_line_is_redacted_including_extras_and_tracebacks() -> None:
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        record = logging.LogRecord("app", logging.ERROR, __file__, 1, "issued %s", (JWT,), sys.exc_info())
    record.client_secret = "s3cr3t-value"  # noqa: S105 - an extra= field
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert JWT not in line and "s3cr3t-value" not in line
    assert entry["message"] == f"issued {REDACTED}" and entry["client_secret"] == REDACTED
