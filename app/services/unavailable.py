"""The one "cannot serve this right now, retry later" error of the service layer.

A service raises `ServiceUnavailable` with a stable code and a message for the client; the API answers
every one of them the same way, 503 with Retry-After (app/errors.py), whichever service raised it.
"""

from __future__ import annotations


class ServiceUnavailable(Exception):
    """A transient failure the client should retry: `code` and `message` go into the error body."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
