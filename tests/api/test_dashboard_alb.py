"""The dashboard behind the ALB's Cognito/OIDC authentication (SENSOR_DASHBOARD_AUTH=alb): the app trusts
the ALB-signed `x-amzn-oidc-data` header only when it is ES256, signed by this service's ALB, verified with
the public key fetched over HTTP for its kid (a locally generated P-256 key served by a local HTTP server,
standing in for public-keys.auth.elb.<region>.amazonaws.com), and not expired."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

ALB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/sensor-dev/50dc6c495c0c9188"
OTHER_ALB = ALB_ARN.replace("sensor-dev", "someone-else")
KID = "0c6b2d4a-8e1f-4a59-9bb5-1d2f3e4a5b6c"


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def key_server(signing_key) -> Iterator[tuple[str, list[str]]]:
    """Serves the public key PEM at /<kid>, like the regional ELB key endpoint; records the paths asked."""
    pem = signing_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            found = self.path == f"/{KID}"
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(pem if found else b"not found")

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{{kid}}", asked
    finally:
        server.shutdown()


@pytest.fixture
def client(tmp_path: Path, key_server) -> Iterator[TestClient]:
    url, _ = key_server
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db", dead_letter_dir=tmp_path / "dl",
                        dashboard_auth="alb", alb_arn=ALB_ARN, alb_public_key_url=url)
    with TestClient(create_app(settings), follow_redirects=False) as test_client:
        yield test_client


def alb_header(key, *, signer: str = ALB_ARN, kid: str = KID, expires_in: float = 60, algorithm: str = "ES256",
               padded: bool = True, sub: str = "user-123") -> str:
    """What the ALB sends: ES256 over base64url parts, with padding (which strict JWT decoders refuse)."""
    exp = int(time.time() + expires_in)
    headers = {"kid": kid, "signer": signer, "iss": "https://cognito-idp.eu-west-1.amazonaws.com/pool",
               "client": "dashboard-client", "exp": exp}
    token = jwt.encode({"sub": sub, "email": "oncall@example.com", "exp": exp}, key, algorithm=algorithm,
                       headers=headers)
    if not padded:
        return token
    return ".".join(part + "=" * (-len(part) % 4) for part in token.split("."))


def test_valid_alb_header_opens_the_page_and_the_session(client: TestClient, signing_key, key_server) -> None:
    header = {"x-amzn-oidc-data": alb_header(signing_key)}
    assert client.get("/dashboard", headers=header).status_code == 200
    session = client.get("/dashboard/session", headers=header)
    assert session.status_code == 200 and session.json() == {"viewer": "oncall@example.com"}
    assert client.get("/dashboard", headers={"x-amzn-oidc-data": alb_header(signing_key, padded=False)}).status_code == 200
    _, asked = key_server
    assert f"/{KID}" in asked, "the key came from the key endpoint"


def forged_payload(key) -> str:
    header, _payload, signature = alb_header(key).split(".")
    payload = base64.urlsafe_b64encode(json.dumps({"sub": "admin", "exp": time.time() + 60}).encode()).decode()
    return ".".join((header, payload, signature))


@pytest.mark.parametrize(("case", "make"), [
    ("missing", lambda key: None),
    ("another ALB signed it", lambda key: alb_header(key, signer=OTHER_ALB)),
    ("expired", lambda key: alb_header(key, expires_in=-5)),
    ("payload changed after signing", forged_payload),
    ("signed by another key", lambda key: alb_header(ec.generate_private_key(ec.SECP256R1()))),
    ("HS256 with the public key as secret", lambda key: alb_header("x" * 32, algorithm="HS256")),
    ("not a JWT", lambda key: "hello"),
    ("kid with a path in it", lambda key: alb_header(key, kid="../../etc/passwd")),
])
def test_untrusted_alb_headers_are_refused(client: TestClient, signing_key, case: str, make) -> None:
    value = make(signing_key)
    headers = {"x-amzn-oidc-data": value} if value is not None else {}
    for path in ("/dashboard", "/dashboard/stream", "/dashboard/session"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, (case, path, response.text)
        assert response.json()["error"]["code"] == "invalid_oidc_data"


def test_session_cookie_sign_in_is_off_behind_the_alb(client: TestClient) -> None:
    assert client.get("/dashboard/sign-in").status_code == 404
    response = client.post("/dashboard/sign-in", data={"client_id": "dashboard", "client_secret": "dashboard-local-secret"},
                           headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 404 and "set-cookie" not in response.headers


def test_alb_mode_needs_the_alb_arn() -> None:
    with pytest.raises(ValueError, match="SENSOR_ALB_ARN"):
        Settings(dashboard_auth="alb")


def test_sign_out_behind_the_alb_expires_the_alb_session(client: TestClient) -> None:
    response = client.post("/dashboard/sign-out", headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    expired = response.headers.get_list("set-cookie")
    assert any(cookie.startswith("AWSELBAuthSessionCookie-0=") and "Max-Age=0" in cookie for cookie in expired)
    assert client.post("/dashboard/sign-out", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
