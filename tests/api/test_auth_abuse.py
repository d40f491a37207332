"""Auth and abuse against the real application: forged and wrong-scope tokens on every secured
operation of the OpenAPI schema, the per-client rate limit under concurrent HTTP requests to a real
uvicorn server, and SQL injection strings that must stay inert data on SQLite and PostgreSQL.

tests/api/test_auth.py covers the token service itself, each forgery once against a minimal app; here
the same forgeries meet every route the service actually exposes, so a route that forgot its guard (or
an operation added later without one) fails.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from fastapi.testclient import TestClient

from app.main import create_app
from app.security.tokens import AUDIENCE, ISSUER
from app.settings import LOCAL_CLIENTS, ClientConfig, Settings, sha256_hex
from devstack.processes import free_port
from tests.api.test_auth import json_segment
from tests.support.app import SIMULATOR

SIGNING_KEY = Settings().jwt_signing_key.get_secret_value()
OTHER_KEY = "not-the-service-key-0123456789abcdef0123456789abcdef0123456789abcdef"
OPENAPI = create_app(Settings()).openapi()
SECURED = sorted(
    (method.upper(), path)
    for path, methods in OPENAPI["paths"].items()
    for method, operation in methods.items()
    if operation.get("security")
)
SCOPE_OF = {path: "ingest" if path.startswith("/ingest") else "read" for _, path in SECURED}
BODY = {"timestamp": "2025-11-23T10:30:45", "tag": "fermenter_ph", "value": 7.0}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {"sub": "simulator", "scope": "ingest read", "iat": now, "exp": now + 600, "iss": ISSUER,
              "aud": AUDIENCE, "jti": "abuse-test"}
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def unsigned(payload: dict[str, Any]) -> str:
    return f"{json_segment({'alg': 'none', 'typ': 'JWT'})}.{json_segment(payload)}."


def with_payload_of(token: str, payload: dict[str, Any]) -> str:
    """The original header and signature around a rewritten payload (e.g. scope escalation)."""
    header, _, signature = token.split(".")
    return f"{header}.{json_segment(payload)}.{signature}"


def forged_tokens(real_read_only_token: str) -> dict[str, tuple[str, str]]:
    """name: (Authorization header value, words the 401 message must contain)."""
    return {
        "expired": (f"Bearer {jwt.encode(claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), SIGNING_KEY)}",
                    "expired"),
        "other-key": (f"Bearer {jwt.encode(claims(), OTHER_KEY)}", "signature"),
        "alg-none": (f"Bearer {unsigned(claims())}", "algorithm"),
        "hs512": (f"Bearer {jwt.encode(claims(), SIGNING_KEY + SIGNING_KEY, algorithm='HS512')}", "algorithm"),
        "scope-escalated": (f"Bearer {with_payload_of(real_read_only_token, claims(sub='dashboard'))}",
                            "signature"),
        "wrong-audience": (f"Bearer {jwt.encode(claims(aud='another-api'), SIGNING_KEY)}", "audience"),
        "unknown-client": (f"Bearer {jwt.encode(claims(sub='intruder'), SIGNING_KEY)}", "intruder"),
        "garbage": ("Bearer not.a.jwt", "malformed"),
        "sql-in-token": ("Bearer ' OR '1'='1", "malformed"),
        "basic-scheme": ("Basic c2ltdWxhdG9yOnNpbXVsYXRvci1sb2NhbC1zZWNyZXQ=", "Bearer"),
        "empty-bearer": ("Bearer ", "Bearer"),
    }


@pytest.fixture
def client(serve, settings_for) -> Iterator[TestClient]:
    with serve(settings_for()) as client:
        client.headers.pop("Authorization")
        yield client


def token(client: TestClient, credentials: dict[str, str], scope: str | None = None) -> str:
    response = client.post("/auth/token", json={**credentials, **({"scope": scope} if scope else {})})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def call(client: TestClient, method: str, path: str, authorization: str | None):
    headers = {"Authorization": authorization} if authorization is not None else {}
    return client.request(method, path, json=BODY if method == "POST" else None, headers=headers)


def test_schema_marks_every_data_operation_as_secured() -> None:
    assert {path for _, path in SECURED} == {"/ingest", "/ingest/batch", "/data", "/sensors/stats",
                                            "/sensors/anomalies/count", "/metrics"}


def test_every_secured_operation_refuses_missing_and_forged_tokens(client: TestClient) -> None:
    read_only = token(client, {"client_id": "dashboard", "client_secret": "dashboard-local-secret"})
    forgeries = {"missing": (None, "missing"), **forged_tokens(read_only)}
    for method, path in SECURED:
        for name, (authorization, words) in forgeries.items():
            response = call(client, method, path, authorization)
            assert response.status_code == 401, (method, path, name, response.text)
            error = response.json()["error"]
            assert error["code"] in {"missing_token", "invalid_token"}
            assert words in error["message"], (method, path, name, error)
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/data", headers={"Authorization": f"Bearer {read_only}"}).json() == []


def test_every_secured_operation_refuses_a_token_without_its_scope(client: TestClient) -> None:
    only = {"read": token(client, SIMULATOR, scope="ingest"), "ingest": token(client, SIMULATOR, scope="read")}
    for method, path in SECURED:
        needed = SCOPE_OF[path]
        response = call(client, method, path, f"Bearer {only[needed]}")
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "insufficient_scope"
        assert repr(needed) in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "credentials",
    [
        {"client_id": "simulator", "client_secret": "wrong"},
        {"client_id": "simulator", "client_secret": "simulator-local-secret "},
        {"client_id": "simulator' OR '1'='1", "client_secret": "x' OR '1'='1"},
        {"client_id": "dashboard", "client_secret": "simulator-local-secret"},
    ],
)
def test_wrong_client_secrets_get_no_token(client: TestClient, credentials: dict[str, str]) -> None:
    response = client.post("/auth/token", json=credentials)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_client"
    assert "access_token" not in response.text


def test_a_read_only_client_cannot_obtain_the_ingest_scope(client: TestClient) -> None:
    response = client.post("/auth/token", json={"client_id": "dashboard", "client_secret": "dashboard-local-secret",
                                                "scope": "ingest read"})
    assert response.status_code == 400
    assert "'ingest'" in response.json()["error"]["message"]


# --- rate limits under concurrency, over real HTTP ----------------------------------------------------

TINY = ClientConfig(client_id="tiny", secret_sha256=sha256_hex("tiny-secret"), rate_per_second=0.01, burst=7)
CONCURRENT_REQUESTS = 40


@contextmanager
def uvicorn_serving(settings: Settings) -> Iterator[str]:
    """The real app under a real uvicorn server in a thread (one process, like one ECS task)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


async def fire(url: str, requests: list[tuple[str, str, Any]], token: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        return await asyncio.gather(*(http.request(method, path, json=body) for method, path, body in requests))


def test_concurrent_requests_get_exactly_the_burst_and_429_with_retry_after(backend_settings: Settings) -> None:
    settings = backend_settings.model_copy(update={"clients": (*LOCAL_CLIENTS, TINY)})
    with uvicorn_serving(settings) as url:
        issued = httpx.post(f"{url}/auth/token", json={"client_id": "tiny", "client_secret": "tiny-secret"})
        tiny_token = issued.json()["access_token"]
        # Half writes, half reads, all at once: the bucket is per client, not per route.
        requests = [("POST", "/ingest", {**BODY, "timestamp": f"2025-11-23T10:30:{i:02d}", "device_id": f"d{i}"})
                    if i % 2 else ("GET", "/sensors/stats", None) for i in range(CONCURRENT_REQUESTS)]
        responses = asyncio.run(fire(url, requests, tiny_token))
        codes = Counter(response.status_code for response in responses)
        assert codes[429] == CONCURRENT_REQUESTS - TINY.burst, codes
        assert set(codes) <= {200, 201, 429}, codes
        for response in responses:
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
                assert response.headers["x-ratelimit-remaining"] == "0"
                assert "'tiny'" in response.json()["error"]["message"]
        # Refused writes stored nothing; accepted ones are all there (read with an unlimited client).
        loadtest = httpx.post(f"{url}/auth/token", json={"client_id": "loadtest",
                                                         "client_secret": "loadtest-local-secret"})
        stored = httpx.get(f"{url}/data", params={"limit": 1000},
                           headers={"Authorization": f"Bearer {loadtest.json()['access_token']}"}).json()
        assert len(stored) == codes[201]


# --- SQL injection -----------------------------------------------------------------------------------

# Device ids only admit [A-Za-z0-9_.:@/-]; these use what SQL gives meaning to inside that alphabet.
INJECTION_DEVICE_IDS = ["x--", "1---", "@@version", "a//b", "x:1.0/-1", "_", "..:@/"]
INJECTION_STRINGS = [
    "' OR '1'='1",
    "fermenter_ph'; DROP TABLE readings; --",
    "fermenter_ph\" OR 1=1 --",
    "x' UNION SELECT id, device_id, tag, ts, value FROM readings --",
    "1; SELECT pg_sleep(5)",
]
# LIKE wildcards: the queries compare with `=`, so these match only themselves.
WILDCARDS = ["%", "_", "fermenter%"]


def test_sql_injection_strings_are_inert(serve, backend_settings: Settings) -> None:
    with serve(backend_settings) as client:
        readings = [{**BODY, "timestamp": f"2025-11-23T10:30:{i:02d}", "device_id": device_id}
                    for i, device_id in enumerate(INJECTION_DEVICE_IDS)]
        assert client.post("/ingest/batch", json=readings).status_code == 201
        # Round trip: each id is stored and found literally, and matches only itself.
        for device_id in INJECTION_DEVICE_IDS:
            found = client.get("/data", params={"device_id": device_id}).json()
            assert [row["device_id"] for row in found] == [device_id]
            (stats,) = client.get("/sensors/stats", params={"device_id": device_id}).json()
            assert stats["devices"] == 1
        for text in INJECTION_STRINGS + WILDCARDS:
            for path in ("/data", "/sensors/anomalies/count"):
                response = client.get(path, params={"tag": text})
                assert response.status_code == 200, response.text
                assert response.json() in ([], {"total": 0, "by_tag": {}})
            response = client.get("/data", params={"device_id": text})
            assert response.status_code in (200, 422), response.text
            if response.status_code == 200:  # a literal match only: "_" and "%" are no wildcards
                assert [row["device_id"] for row in response.json()] == [text] * (text in INJECTION_DEVICE_IDS)
            else:
                assert response.json()["error"]["details"][0]["loc"] == ["query", "device_id"]
        for text in INJECTION_STRINGS:
            rejected = client.post("/ingest", json={**BODY, "device_id": text})
            assert rejected.status_code == 422 and rejected.json()["error"]["details"][0]["loc"] == ["device_id"]
            assert client.post("/ingest", json={**BODY, "tag": text}).status_code == 422
        # The table is intact and holds exactly what was stored.
        everything = client.get("/data", params={"limit": 1000}).json()
        assert sorted(row["device_id"] for row in everything) == sorted(INJECTION_DEVICE_IDS)
        (stats,) = client.get("/sensors/stats").json()
        assert stats["count"] == len(INJECTION_DEVICE_IDS) and stats["devices"] == len(INJECTION_DEVICE_IDS)
