"""Access tokens: issuing HS256 JWTs to configured machine clients and verifying them on every request.

Owns client authentication (secret check), scope granting, the token claims and the verification rules
(algorithm pinning, issuer, audience, expiry). Every failure is an `ApiError`.
"""

from __future__ import annotations

import hmac
import math
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from app.errors import ApiError
from app.settings import ClientConfig, Settings, sha256_hex

ISSUER = "sensor-platform"
AUDIENCE = "sensor-api"
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "aud")
# Tokens may be issued by another task of the service whose clock is slightly ahead.
ISSUED_AT_LEEWAY_SECONDS = 30
DEFAULT_CACHE_SIZE = 4096

INVALID_TOKEN_HEADERS = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
# Compared against when the client id is unknown, so that unknown clients cost the same as wrong secrets.
_UNKNOWN_CLIENT_DIGEST = sha256_hex(secrets.token_hex(32))


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated client behind a verified token."""

    client_id: str
    scopes: frozenset[str]
    expires_at: float


class TokenService:
    """Issues and verifies the service's access tokens."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self._signing_key = settings.jwt_signing_key.get_secret_value()
        self._ttl_seconds = settings.token_ttl_seconds
        self._clients: dict[str, ClientConfig] = {client.client_id: client for client in settings.clients}
        self._clock = clock
        self._cache_size = cache_size
        # Only successfully verified tokens are cached, so garbage cannot fill it; the bound caps memory
        # when many clients rotate tokens.
        self._verified: dict[str, Principal] = {}

    def issue(self, client_id: str, client_secret: str, requested_scopes: set[str] | None) -> dict[str, Any]:
        """Authenticate the client and return an OAuth2 token response granting `requested_scopes`.

        No (or an empty set of) requested scopes grants all of the client's scopes.
        """
        client = self._authenticate(client_id, client_secret)
        scopes = self._grant(client, requested_scopes)
        issued_at = int(self._clock())
        claims = {
            "sub": client.client_id,
            "scope": " ".join(scopes),
            "iat": issued_at,
            "exp": issued_at + self._ttl_seconds,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "jti": secrets.token_urlsafe(16),
        }
        return {
            "access_token": jwt.encode(claims, self._signing_key, algorithm=ALGORITHM),
            "token_type": "bearer",
            "expires_in": self._ttl_seconds,
            "scope": claims["scope"],
        }

    def verify(self, token: str) -> Principal:
        """Return the principal of a valid token; raise `ApiError(401, "invalid_token")` otherwise."""
        now = self._clock()
        cached = self._verified.get(token)
        principal = cached if cached is not None else self._decode(token, now)
        if principal.expires_at <= now:
            if cached is not None:
                del self._verified[token]
            raise _invalid_token("token has expired")
        if cached is None:
            self._remember(token, principal)
        return principal

    def _authenticate(self, client_id: str, client_secret: str) -> ClientConfig:
        client = self._clients.get(client_id)
        expected_digest = client.secret_sha256 if client else _UNKNOWN_CLIENT_DIGEST
        secret_matches = hmac.compare_digest(sha256_hex(client_secret), expected_digest)
        if client is None or not secret_matches:
            raise ApiError(401, "invalid_client", "client authentication failed: unknown client or wrong secret")
        return client

    @staticmethod
    def _grant(client: ClientConfig, requested_scopes: set[str] | None) -> list[str]:
        if not requested_scopes:
            return sorted(set(client.scopes))
        not_allowed = sorted(requested_scopes - set(client.scopes))
        if not_allowed:
            names = ", ".join(repr(scope) for scope in not_allowed)
            raise ApiError(400, "invalid_scope", f"scope {names} is not allowed for client {client.client_id!r}")
        return sorted(requested_scopes)

    def _decode(self, token: str, now: float) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._signing_key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                # Time claims are checked below against the injectable clock instead of PyJWT's wall clock.
                options={"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_iat": False,
                         "verify_nbf": False},
            )
        except jwt.PyJWTError as error:
            raise _invalid_token(_describe(error)) from None
        except (ValueError, TypeError) as error:  # defensive: input PyJWT did not anticipate
            raise _invalid_token(f"token is malformed ({type(error).__name__})") from None

        expires_at = _number_claim(claims, "exp")
        issued_at = _number_claim(claims, "iat")
        if issued_at > now + ISSUED_AT_LEEWAY_SECONDS:
            raise _invalid_token("token is not valid yet: issued in the future (iat)")
        if "nbf" in claims and _number_claim(claims, "nbf") > now + ISSUED_AT_LEEWAY_SECONDS:
            raise _invalid_token("token is not valid yet (nbf)")
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise _invalid_token("token claim 'scope' must be a space-separated string")
        client = self._clients.get(claims["sub"])
        if client is None:
            raise _invalid_token(f"client {claims['sub']!r} is no longer configured")
        # A client whose scopes were reduced in configuration loses them even on tokens issued before.
        return Principal(client.client_id, _scopes(scope.split(), client.scopes), expires_at)

    def _remember(self, token: str, principal: Principal) -> None:
        if len(self._verified) >= self._cache_size:
            # Evict the oldest entry (dicts keep insertion order): O(1), and eviction only costs a re-decode.
            del self._verified[next(iter(self._verified))]
        self._verified[token] = principal


def _scopes(token_scopes: Iterable[str], client_scopes: Iterable[str]) -> frozenset[str]:
    return frozenset(token_scopes) & frozenset(client_scopes)


def _number_claim(claims: dict[str, Any], name: str) -> float:
    value = claims[name]
    problem = _invalid_token(f"token claim {name!r} must be a number of seconds since the epoch")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise problem
    try:
        seconds = float(value)
    except OverflowError:
        raise problem from None
    if not math.isfinite(seconds):
        raise problem
    return seconds


# Checked in order: InvalidSignatureError is a DecodeError.
_TOKEN_ERROR_MESSAGES: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.InvalidAlgorithmError, f"token algorithm is not allowed (only {ALGORITHM} is accepted)"),
    (jwt.InvalidSignatureError, "token signature is invalid"),
    (jwt.InvalidIssuerError, f"token issuer is invalid (expected {ISSUER!r})"),
    (jwt.InvalidAudienceError, f"token audience is invalid (expected {AUDIENCE!r})"),
    (jwt.DecodeError, "token is malformed"),
)


def _describe(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"token is missing the required claim {error.claim!r}"
    for error_type, message in _TOKEN_ERROR_MESSAGES:
        if isinstance(error, error_type):
            return message
    return f"token is invalid: {error}"


def _invalid_token(message: str) -> ApiError:
    return ApiError(401, "invalid_token", message, headers=dict(INVALID_TOKEN_HEADERS))
