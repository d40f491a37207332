"""Browser-facing response headers on every response (added by app/observability/middleware.py).

Every HTML page the service serves (dashboard, sign-in, /docs) gets a Content-Security-Policy that only
admits this origin's scripts, styles and API calls — no inline script, no CDN — so an injected script
could neither run nor send anything elsewhere. Every response (HTML or not) gets `Referrer-Policy:
no-referrer` and `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ALWAYS = (
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
)
HTML_ONLY = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
)


def with_page_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` (a response's, changed in place) plus the headers above that it does not set itself."""
    present = {name.lower() for name, _ in headers}
    content_type = next((value for name, value in headers if name.lower() == b"content-type"), b"")
    extra = ALWAYS + (HTML_ONLY if content_type.startswith(b"text/html") else ())
    headers.extend((name, value) for name, value in extra if name not in present)
    return headers
