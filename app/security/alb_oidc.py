"""Verifies the `x-amzn-oidc-data` header the ALB adds after it authenticated a user (Cognito or OIDC).

The ALB signs the header itself with ES256; the public key for the header's `kid` is published at a
regional endpoint (`https://public-keys.auth.elb.<region>.amazonaws.com/<kid>`). The header is trusted
only when: the algorithm is ES256, the `signer` is this service's ALB (so a token from any other ALB is
refused), the signature verifies, and it has not expired. The ALB base64url-encodes with padding, which
strict JWT libraries refuse, so padding is stripped first.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt

from app.errors import ApiError

HEADER = "x-amzn-oidc-data"
ALGORITHM = "ES256"
KID_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,128}$")
KEY_FETCH_TIMEOUT_SECONDS = 5.0
MAX_CACHED_KEYS = 64


@dataclass(frozen=True, slots=True)
class OidcUser:
    """The user the ALB authenticated."""

    subject: str
    email: str | None
    expires_at: float


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, "invalid_oidc_data", f"{HEADER}: {message}")


def _json_part(part: str) -> dict:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, TypeError):
        raise _unauthenticated("not a signed JWT") from None
    if not isinstance(decoded, dict):
        raise _unauthenticated("not a signed JWT")
    return decoded


def _fetch_pem(url: str) -> Awaitable[bytes]:
    def fetch() -> bytes:
        with urllib.request.urlopen(url, timeout=KEY_FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310 - https/config
            return response.read()

    return asyncio.to_thread(fetch)


class AlbOidcVerifier:
    """One per process: keeps the ALB's public keys by kid (they are immutable per kid)."""

    def __init__(self, *, alb_arn: str, region: str, key_url_template: str,
                 fetch: Callable[[str], Awaitable[bytes]] = _fetch_pem,
                 clock: Callable[[], float] = time.time) -> None:
        self._alb_arn = alb_arn
        self._region = region
        self._key_url_template = key_url_template
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, bytes] = {}

    async def verify(self, value: str | None) -> OidcUser:
        if not value:
            raise _unauthenticated("missing: the load balancer did not authenticate this request")
        parts = value.strip().split(".")
        if len(parts) != 3:
            raise _unauthenticated("not a signed JWT")
        parts = [part.rstrip("=") for part in parts]
        header = _json_part(parts[0])
        if header.get("alg") != ALGORITHM:
            raise _unauthenticated(f"algorithm must be {ALGORITHM}")
        if header.get("signer") != self._alb_arn:
            raise _unauthenticated("signed by another load balancer")
        kid = header.get("kid")
        if not isinstance(kid, str) or not KID_PATTERN.match(kid):
            raise _unauthenticated("key id (kid) is missing or malformed")
        key = await self._key(kid)
        try:
            claims = jwt.decode(".".join(parts), key, algorithms=[ALGORITHM], options={"verify_exp": False,
                                                                                       "verify_aud": False})
        except jwt.PyJWTError:
            raise _unauthenticated("signature is invalid") from None
        expires_at = header.get("exp", claims.get("exp"))
        if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
            raise _unauthenticated("expiry (exp) is missing")
        if expires_at <= self._clock():
            raise _unauthenticated("expired")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise _unauthenticated("subject (sub) is missing")
        email = claims.get("email")
        return OidcUser(subject=subject, email=email if isinstance(email, str) else None, expires_at=expires_at)

    async def _key(self, kid: str) -> bytes:
        key = self._keys.get(kid)
        if key is None:
            url = self._key_url_template.format(region=self._region, kid=kid)
            try:
                key = await self._fetch(url)
            except OSError as error:
                raise ApiError(503, "oidc_key_unavailable",
                               f"the load balancer's public key {kid!r} could not be fetched: {error}") from None
            if len(self._keys) >= MAX_CACHED_KEYS:
                self._keys.pop(next(iter(self._keys)))
            self._keys[kid] = key
        return key
