"""Token issuing (`POST /auth/token`) and bearer-token verification on protected routes.

The app under test is built here from the security package alone: error handlers, `install_security`,
the auth router and two routes guarded by `require_scope("ingest")` and `require_scope("read")`.
Time is a fake clock shared by the token service and the rate limiter, so nothing sleeps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from app.api import auth
from app.errors import install_error_handlers
from app.security import LeakyBucketLimiter, Principal, TokenService, install_security, require_scope
from app.settings import ClientConfig, Settings, sha256_hex
from tests.support.clock import ManualClock

# 64 bytes: long enough that PyJWT does not warn when the tests sign with HS512.
SIGNING_KEY = "test-signing-key-0123456789abcdef0123456789abcdef0123456789abcdef"
OTHER_KEY = "another-signing-key-0123456789abcdef0123456789abcdef0123456789ab"
TOKEN_TTL_SECONDS = 600
START_TIME = 1_800_000_000.0
SECRETS = {"simulator": "simulator-secret", "dashboard": "dashboard-secret", "gateway": "gateway-secret"}
TEST_CLIENTS = (
    ClientConfig(client_id="simulator", secret_sha256=sha256_hex(SECRETS["simulator"]), scopes=("ingest", "read")),
    ClientConfig(client_id="dashboard", secret_sha256=sha256_hex(SECRETS["dashboard"]), scopes=("read",)),
    ClientConfig(client_id="gateway", secret_sha256=sha256_hex(SECRETS["gateway"]), scopes=("ingest",)),
)
INVALID_BEARER_CHALLENGE = 'Bearer error="invalid_token"'


def make_settings(clients: tuple[ClientConfig, ...] = TEST_CLIENTS) -> Settings:
    return Settings(jwt_signing_key=SecretStr(SIGNING_KEY), token_ttl_seconds=TOKEN_TTL_SECONDS, clients=clients)


def build_app(clock: ManualClock, app_settings: Settings | None = None) -> FastAPI:
    app_settings = app_settings or make_settings()
    app = FastAPI()
    install_error_handlers(app)
    install_security(
        app, app_settings, tokens=TokenService(app_settings, clock=clock), limiter=LeakyBucketLimiter(clock=clock)
    )
    app.include_router(auth.router)

    @app.post("/readings")
    async def ingest(principal: Annotated[Principal, Depends(require_scope("ingest"))]) -> dict[str, str]:
        return {"client_id": principal.client_id}

    @app.get("/readings")
    async def read(principal: Annotated[Principal, Depends(require_scope("read"))]) -> dict[str, str]:
        return {"client_id": principal.client_id}

    return app


def http_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def fetch_token(client: httpx.AsyncClient, client_id: str = "simulator", scope: str | None = None) -> str:
    body = {"client_id": client_id, "client_secret": SECRETS[client_id]}
    if scope is not None:
        body["scope"] = scope
    response = await client.post("/auth/token", json=body)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the common error body and return its `error` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return body["error"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def json_segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def valid_claims(clock: ManualClock, **overrides: Any) -> dict[str, Any]:
    claims = {
        "sub": "simulator",
        "scope": "ingest read",
        "iat": int(clock.now),
        "exp": int(clock.now) + TOKEN_TTL_SECONDS,
        "iss": "sensor-platform",
        "aud": "sensor-api",
        "jti": "test-token",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START_TIME)


@pytest.fixture
async def client(clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(build_app(clock)) as client:
        yield client


# --- POST /auth/token ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_json_token_request_grants_all_client_scopes(client: httpx.AsyncClient, clock: ManualClock) -> None:
    response = await client.post(
        "/auth/token", json={"client_id": "simulator", "client_secret": SECRETS["simulator"]}
    )

    assert response.status_code == 200
    body = response.json()
    assert body.keys() == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    assert body["expires_in"] == TOKEN_TTL_SECONDS
    assert body["scope"] == "ingest read"
    assert response.headers["Cache-Control"] == "no-store"
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    claims = jwt.decode(
        body["access_token"], SIGNING_KEY, algorithms=["HS256"], audience="sensor-api",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["sub"] == "simulator"
    assert claims["scope"] == "ingest read"
    assert claims["iss"] == "sensor-platform"
    assert claims["iat"] == int(clock.now)
    assert claims["exp"] == claims["iat"] + TOKEN_TTL_SECONDS
    assert claims["jti"]


@pytest.mark.anyio
async def test_tokens_get_distinct_ids(client: httpx.AsyncClient) -> None:
    first, second = await fetch_token(client), await fetch_token(client)

    assert first != second


@pytest.mark.anyio
async def test_form_token_request_with_client_credentials_grant(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", data={
        "grant_type": "client_credentials", "client_id": "simulator",
        "client_secret": SECRETS["simulator"], "scope": "read",
    })

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read"
    read = await client.get("/readings", headers=bearer(response.json()["access_token"]))
    assert read.status_code == 200


@pytest.mark.anyio
async def test_requested_subset_of_scopes_limits_the_token(client: httpx.AsyncClient) -> None:
    token = await fetch_token(client, "simulator", scope="read")

    response = await client.post("/readings", headers=bearer(token))

    error = assert_error(response, 403, "insufficient_scope")
    assert "'ingest'" in error["message"]


@pytest.mark.anyio
@pytest.mark.parametrize(("client_id", "scope", "refused"), [
    ("dashboard", "ingest", "'ingest'"),
    ("simulator", "read admin", "'admin'"),
])
async def test_requesting_a_scope_the_client_lacks_is_400(
    client: httpx.AsyncClient, client_id: str, scope: str, refused: str
) -> None:
    response = await client.post(
        "/auth/token", json={"client_id": client_id, "client_secret": SECRETS[client_id], "scope": scope}
    )

    error = assert_error(response, 400, "invalid_scope")
    assert refused in error["message"]


@pytest.mark.anyio
async def test_wrong_secret_and_unknown_client_are_indistinguishable(client: httpx.AsyncClient) -> None:
    wrong_secret = await client.post("/auth/token", json={"client_id": "simulator", "client_secret": "guess"})
    unknown_client = await client.post("/auth/token", json={"client_id": "nobody", "client_secret": "guess"})

    assert assert_error(wrong_secret, 401, "invalid_client") == assert_error(unknown_client, 401, "invalid_client")


@pytest.mark.anyio
async def test_form_with_wrong_secret_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", data={
        "grant_type": "client_credentials", "client_id": "simulator", "client_secret": SECRETS["dashboard"],
    })

    assert_error(response, 401, "invalid_client")


@pytest.mark.anyio
@pytest.mark.parametrize("as_form", [True, False], ids=["form", "json"])
async def test_other_grant_types_are_refused(client: httpx.AsyncClient, as_form: bool) -> None:
    body = {"grant_type": "password", "client_id": "simulator", "client_secret": SECRETS["simulator"]}

    response = await client.post("/auth/token", **({"data": body} if as_form else {"json": body}))

    error = assert_error(response, 400, "unsupported_grant_type")
    assert "'password'" in error["message"]


@pytest.mark.anyio
@pytest.mark.parametrize(("as_form", "body", "missing"), [
    (False, {"client_secret": "x"}, "client_id"),
    (False, {"client_id": "simulator"}, "client_secret"),
    (False, {"client_id": "", "client_secret": "x"}, "client_id"),
    (True, {"grant_type": "client_credentials", "client_id": "simulator"}, "client_secret"),
    (True, {"client_id": "simulator", "client_secret": "x"}, "grant_type"),
], ids=["json-client_id", "json-client_secret", "json-empty-client_id", "form-client_secret", "form-grant_type"])
async def test_missing_fields_are_422_naming_the_field(
    client: httpx.AsyncClient, as_form: bool, body: dict[str, str], missing: str
) -> None:
    response = await client.post("/auth/token", **({"data": body} if as_form else {"json": body}))

    error = assert_error(response, 422, "validation_error")
    assert missing in error["message"]
    assert [detail["loc"] for detail in error["details"]] == [[missing]]


@pytest.mark.anyio
async def test_body_that_is_not_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", content=b"{not json", headers={"Content-Type": "application/json"})

    assert_error(response, 422, "validation_error")


@pytest.mark.anyio
async def test_other_media_types_are_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", content=b"client_id=simulator", headers={"Content-Type": "text/plain"})

    assert_error(response, 415, "unsupported_media_type")


def test_token_endpoint_is_documented_in_openapi() -> None:
    schema = build_app(ManualClock(START_TIME)).openapi()

    operation = schema["paths"]["/auth/token"]["post"]
    assert operation["summary"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "application/x-www-form-urlencoded"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("TokenResponse")
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    assert schema["paths"]["/readings"]["post"]["security"] == [{"BearerToken": []}]


# --- protected routes ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_valid_token_reaches_the_route_with_rate_limit_headers(client: httpx.AsyncClient) -> None:
    token = await fetch_token(client)

    response = await client.post("/readings", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {"client_id": "simulator"}
    assert response.headers["X-RateLimit-Limit"] == "20"
    assert response.headers["X-RateLimit-Remaining"] == "19"
    assert response.headers["X-RateLimit-Reset"] == "1"


@pytest.mark.anyio
async def test_read_scope_reaches_read_route_but_not_ingest(client: httpx.AsyncClient) -> None:
    token = await fetch_token(client, "dashboard")

    assert (await client.get("/readings", headers=bearer(token))).status_code == 200
    error = assert_error(await client.post("/readings", headers=bearer(token)), 403, "insufficient_scope")
    assert "'ingest'" in error["message"]


@pytest.mark.anyio
async def test_missing_authorization_header_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/readings")

    assert_error(response, 401, "missing_token")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.anyio
@pytest.mark.parametrize("header", ["Basic c2ltdWxhdG9yOnNlY3JldA==", "Bearer", "Bearer    ", "Token abc", "bearer"])
async def test_malformed_authorization_header_is_401(client: httpx.AsyncClient, header: str) -> None:
    response = await client.post("/readings", headers={"Authorization": header})

    assert_error(response, 401, "missing_token")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.anyio
async def test_bearer_scheme_is_case_insensitive(client: httpx.AsyncClient) -> None:
    token = await fetch_token(client)

    response = await client.post("/readings", headers={"Authorization": f"bearer {token}"})

    assert response.status_code == 200


@pytest.mark.anyio
async def test_token_expires_after_its_ttl_even_once_cached(client: httpx.AsyncClient, clock: ManualClock) -> None:
    token = await fetch_token(client)
    assert (await client.post("/readings", headers=bearer(token))).status_code == 200

    clock.advance(TOKEN_TTL_SECONDS - 1)
    assert (await client.post("/readings", headers=bearer(token))).status_code == 200
    clock.advance(1)
    response = await client.post("/readings", headers=bearer(token))

    error = assert_error(response, 401, "invalid_token")
    assert "expired" in error["message"]
    assert response.headers["WWW-Authenticate"] == INVALID_BEARER_CHALLENGE


@pytest.mark.anyio
async def test_flipping_a_payload_character_invalidates_the_token(client: httpx.AsyncClient) -> None:
    header, payload, signature = (await fetch_token(client)).split(".")
    middle = len(payload) // 2
    flipped = "B" if payload[middle] == "A" else "A"
    tampered = ".".join([header, payload[:middle] + flipped + payload[middle + 1:], signature])

    response = await client.post("/readings", headers=bearer(tampered))

    assert_error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == INVALID_BEARER_CHALLENGE


@pytest.mark.anyio
async def test_rewritten_payload_with_original_signature_is_401(client: httpx.AsyncClient) -> None:
    header, payload, signature = (await fetch_token(client, "dashboard")).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    escalated = json_segment({**claims, "scope": "ingest read"})

    response = await client.post("/readings", headers=bearer(f"{header}.{escalated}.{signature}"))

    error = assert_error(response, 401, "invalid_token")
    assert "signature" in error["message"]


@pytest.mark.anyio
async def test_token_signed_with_another_key_is_401(client: httpx.AsyncClient, clock: ManualClock) -> None:
    forged = jwt.encode(valid_claims(clock), OTHER_KEY, algorithm="HS256")

    error = assert_error(await client.post("/readings", headers=bearer(forged)), 401, "invalid_token")

    assert "signature" in error["message"]


@pytest.mark.anyio
@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"], ids=["empty-signature", "junk-signature"])
async def test_unsigned_alg_none_token_is_401(
    client: httpx.AsyncClient, clock: ManualClock, alg: str, signature: str
) -> None:
    unsigned = f"{json_segment({'alg': alg, 'typ': 'JWT'})}.{json_segment(valid_claims(clock))}.{signature}"

    error = assert_error(await client.post("/readings", headers=bearer(unsigned)), 401, "invalid_token")

    assert "algorithm" in error["message"]


@pytest.mark.anyio
async def test_hs512_token_with_the_right_key_is_401(client: httpx.AsyncClient, clock: ManualClock) -> None:
    other_algorithm = jwt.encode(valid_claims(clock), SIGNING_KEY, algorithm="HS512")

    error = assert_error(await client.post("/readings", headers=bearer(other_algorithm)), 401, "invalid_token")

    assert "algorithm" in error["message"]


@pytest.mark.anyio
async def test_rs256_header_over_an_hmac_signature_is_401(client: httpx.AsyncClient, clock: ManualClock) -> None:
    signing_input = f"{json_segment({'alg': 'RS256', 'typ': 'JWT'})}.{json_segment(valid_claims(clock))}"
    signature = hmac.new(SIGNING_KEY.encode(), signing_input.encode(), hashlib.sha256).digest()

    response = await client.post("/readings", headers=bearer(f"{signing_input}.{b64url(signature)}"))

    error = assert_error(response, 401, "invalid_token")
    assert "algorithm" in error["message"]


@pytest.mark.anyio
@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "aud"])
async def test_token_missing_a_required_claim_is_401(client: httpx.AsyncClient, clock: ManualClock, claim: str) -> None:
    incomplete = jwt.encode(valid_claims(clock, **{claim: None}), SIGNING_KEY, algorithm="HS256")

    error = assert_error(await client.post("/readings", headers=bearer(incomplete)), 401, "invalid_token")

    assert f"'{claim}'" in error["message"]


@pytest.mark.anyio
@pytest.mark.parametrize(("overrides", "complaint"), [
    ({"iss": "someone-else"}, "issuer"),
    ({"aud": "another-api"}, "audience"),
    ({"sub": "decommissioned"}, "no longer configured"),
    ({"exp": "tomorrow"}, "'exp'"),
    ({"iat": START_TIME + 3600}, "future"),
    ({"scope": ["ingest"]}, "'scope'"),
], ids=["issuer", "audience", "unknown-client", "non-numeric-exp", "issued-in-future", "scope-not-a-string"])
async def test_token_with_invalid_claims_is_401(
    client: httpx.AsyncClient, clock: ManualClock, overrides: dict[str, Any], complaint: str
) -> None:
    token = jwt.encode(valid_claims(clock, **overrides), SIGNING_KEY, algorithm="HS256")

    error = assert_error(await client.post("/readings", headers=bearer(token)), 401, "invalid_token")

    assert complaint in error["message"]


@pytest.mark.anyio
@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9..", "Bearer x"])
async def test_garbage_bearer_token_is_401(client: httpx.AsyncClient, garbage: str) -> None:
    response = await client.post("/readings", headers=bearer(garbage))

    assert_error(response, 401, "invalid_token")


_HEADER_BYTES = st.binary(max_size=300).filter(lambda value: b"\r" not in value and b"\n" not in value)
_TOKENISH = st.text(alphabet=string.ascii_letters + string.digits + "-_.=+/ ", max_size=300)


@settings(max_examples=150, deadline=None)
@given(header=st.one_of(
    _HEADER_BYTES,
    _TOKENISH.map(lambda text: text.encode()),
    _TOKENISH.map(lambda text: f"Bearer {text}".encode()),
    st.lists(_TOKENISH, min_size=2, max_size=4).map(lambda parts: ("Bearer " + ".".join(parts)).encode()),
))
@pytest.mark.anyio
async def test_garbage_authorization_headers_are_always_401(header: bytes) -> None:
    async with http_client(build_app(ManualClock(START_TIME))) as client:
        response = await client.post("/readings", headers={"Authorization": header})

    assert response.status_code == 401, (header, response.text)
    assert response.json()["error"]["code"] in {"missing_token", "invalid_token"}


# --- TokenService ----------------------------------------------------------------------------------------


def test_verify_returns_the_principal(clock: ManualClock) -> None:
    service = TokenService(make_settings(), clock=clock)
    issued = service.issue("gateway", SECRETS["gateway"], None)

    principal = service.verify(issued["access_token"])

    assert principal == Principal("gateway", frozenset({"ingest"}), START_TIME + TOKEN_TTL_SECONDS)


def test_verification_cache_stays_correct_beyond_its_size(clock: ManualClock) -> None:
    service = TokenService(make_settings(), clock=clock, cache_size=2)
    tokens = [service.issue("simulator", SECRETS["simulator"], {"read"})["access_token"] for _ in range(5)]

    for _ in range(2):
        assert [service.verify(token).client_id for token in tokens] == ["simulator"] * 5


def test_scopes_removed_from_a_client_are_dropped_from_its_existing_tokens(clock: ManualClock) -> None:
    token = TokenService(make_settings(), clock=clock).issue("simulator", SECRETS["simulator"], None)
    reduced = tuple(
        client.model_copy(update={"scopes": ("read",)}) if client.client_id == "simulator" else client
        for client in TEST_CLIENTS
    )

    principal = TokenService(make_settings(reduced), clock=clock).verify(token["access_token"])

    assert principal.scopes == frozenset({"read"})


def test_default_settings_issue_tokens_for_the_local_simulator() -> None:
    service = TokenService(Settings())

    issued = service.issue("simulator", "simulator-local-secret", None)

    assert service.verify(issued["access_token"]).scopes == frozenset({"ingest", "read"})
