"""The smoke test of a freshly started (green) service revision, over HTTP(S), stdlib only.

Owns the sequence of checks and their verdicts, nothing about ECS: GET /health and GET /ready (the
service is up), POST /auth/token with the smoke client, POST /ingest of a canary reading, and
GET /data reading that canary back. Each step is reported to `log` as one structured record.

Verdicts: `passed`; `not_ready` (connection refused, timeout or a 5xx on /health or /ready: the tasks
or the ALB targets are not serving yet, worth asking again later); `failed` (the service answers but
wrongly: worth a rollback).
"""

from __future__ import annotations

import functools
import http.client
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

CANARY_DEVICE_ID = "deploy-canary"
CANARY_TAG = "fermenter_ph"
CANARY_VALUE = 7.0

Verdict = Literal["passed", "not_ready", "failed"]
Log = Callable[..., None]


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # parsed JSON, or the raw text when it is not JSON


@dataclass
class SmokeResult:
    verdict: Verdict
    reason: str
    steps: list[str] = field(default_factory=list)


class NotReachable(Exception):
    """No HTTP answer at all (refused, reset, timeout, DNS)."""


class _NamedHTTPSConnection(http.client.HTTPSConnection):
    """Dials the URL's host but runs TLS for `server_name`: SNI and the certificate's host-name check
    use the name the certificate covers (the service's domain), while the TCP connection goes to the
    load balancer's own DNS name. Verification stays fully on."""

    def __init__(self, *args: Any, server_name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout, self.source_address)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)


class _ServerNameHandler(urllib.request.HTTPSHandler):
    def __init__(self, context: ssl.SSLContext, server_name: str) -> None:
        super().__init__(context=context)
        self._server_name = server_name

    def https_open(self, req: urllib.request.Request) -> Any:
        connection = functools.partial(_NamedHTTPSConnection, server_name=self._server_name)
        return self.do_open(connection, req, context=self._context)


class _Client:
    def __init__(
        self, base_url: str, *, timeout: float, ssl_context: ssl.SSLContext | None, server_name: str | None = None
    ) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        handlers: list[urllib.request.BaseHandler] = []
        if ssl_context is not None:
            handlers.append(_ServerNameHandler(ssl_context, server_name) if server_name
                            else urllib.request.HTTPSHandler(context=ssl_context))
        self._opener = urllib.request.build_opener(*handlers)

    def request(
        self, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the deployment's own test listener
            f"{self._base}{path}",
            data=data,
            method=method,
            headers={"Accept": "application/json", **({"Content-Type": "application/json"} if data else {}),
                     **(headers or {})},
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as answer:  # http(s) only (TEST_BASE_URL)
                return Response(answer.status, _parse(answer.read()))
        except urllib.error.HTTPError as error:
            return Response(error.code, _parse(error.read()))
        except (urllib.error.URLError, OSError) as error:  # refused, reset, timeout, DNS, TLS
            reason = getattr(error, "reason", error)
            raise NotReachable(f"{type(reason).__name__}: {reason}") from error


def _parse(raw: bytes) -> Any:
    text = raw.decode(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text[:500]


class _Stop(Exception):
    """A check did not pass: carries the verdict for the whole run."""

    def __init__(self, verdict: Verdict, reason: str) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason


def run(
    base_url: str,
    client_id: str,
    client_secret: str,
    *,
    log: Log,
    timeout: float = 5.0,
    ssl_context: ssl.SSLContext | None = None,
    server_name: str | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SmokeResult:
    """Run every check in order; stop at the first one that does not pass. With `server_name`, TLS
    verifies the certificate against that name instead of the URL's host (see _NamedHTTPSConnection)."""
    client = _Client(base_url, timeout=timeout, ssl_context=ssl_context, server_name=server_name)
    checks = _Checks(client, log)
    try:
        checks.up_and_ready()
        auth = checks.token(client_id, client_secret)
        reading_id = checks.ingest(auth, now())
        checks.read_back(auth, reading_id)
    except _Stop as stop:
        return SmokeResult(stop.verdict, stop.reason, checks.steps)
    return SmokeResult("passed", "all smoke checks passed", checks.steps)


class _Checks:
    def __init__(self, client: _Client, log: Log) -> None:
        self._client = client
        self._log = log
        self.steps: list[str] = []

    def _step(self, name: str, outcome: str, reason: str, **details: Any) -> None:
        self.steps.append(name)
        self._log(step=name, outcome=outcome, reason=reason, **details)

    def _fail(self, name: str, verdict: Verdict, reason: str, answer: Response | None = None) -> _Stop:
        details = {} if answer is None else {"status": answer.status, "body": answer.body}
        self._step(name, verdict, reason, **details)
        return _Stop(verdict, reason)

    def _call(self, name: str, method: str, path: str, **kwargs: Any) -> Response:
        try:
            return self._client.request(method, path, **kwargs)
        except NotReachable as error:
            # Before the service has answered once, silence means "not up yet"; afterwards a failure.
            verdict: Verdict = "not_ready" if name in ("health", "ready") else "failed"
            raise self._fail(name, verdict, f"{method} {path}: no answer ({error})") from error

    def up_and_ready(self) -> None:
        """A 5xx here is the ALB (502/503/504: no healthy target yet) or the app starting or
        draining (503 on /ready): ask again later."""
        for name, path in (("health", "/health"), ("ready", "/ready")):
            answer = self._call(name, "GET", path)
            if answer.status >= 500:
                raise self._fail(name, "not_ready", f"GET {path} answered {answer.status}: not serving yet",
                                 answer)
            if answer.status != 200:
                raise self._fail(name, "failed", f"GET {path} answered {answer.status}, expected 200", answer)
            self._step(name, "ok", f"GET {path} answered 200", body=answer.body)

    def token(self, client_id: str, client_secret: str) -> dict[str, str]:
        answer = self._call("token", "POST", "/auth/token",
                            body={"client_id": client_id, "client_secret": client_secret})
        token = answer.body.get("access_token") if isinstance(answer.body, dict) else None
        if answer.status != 200 or not token:
            raise self._fail("token", "failed",
                             f"POST /auth/token for client {client_id!r} answered {answer.status} without a token",
                             answer)
        self._step("token", "ok", f"token issued to {client_id!r}")
        return {"Authorization": f"Bearer {token}"}

    def ingest(self, auth: dict[str, str], now: datetime) -> Any:
        """The canary must be stored now (201), not parked in the dead-letter store (202)."""
        started = now.astimezone(UTC)
        timestamp = started.replace(microsecond=started.microsecond // 1000 * 1000).isoformat()
        canary = {"device_id": CANARY_DEVICE_ID, "tag": CANARY_TAG, "value": CANARY_VALUE, "timestamp": timestamp}
        answer = self._call("ingest", "POST", "/ingest", body=canary, headers=auth)
        if answer.status != 201 or not isinstance(answer.body, dict) or answer.body.get("status") != "success":
            raise self._fail("ingest", "failed", f"POST /ingest answered {answer.status}, expected 201 stored",
                             answer)
        reading_id = answer.body.get("id")
        self._step("ingest", "ok", "canary reading stored", reading_id=reading_id, timestamp=timestamp)
        return reading_id

    def read_back(self, auth: dict[str, str], reading_id: Any) -> None:
        answer = self._call("read_back", "GET", f"/data?device_id={CANARY_DEVICE_ID}&limit=1", headers=auth)
        rows = answer.body if answer.status == 200 and isinstance(answer.body, list) else []
        newest = rows[0] if rows and isinstance(rows[0], dict) else {}
        if (newest.get("id"), newest.get("tag"), newest.get("value")) != (reading_id, CANARY_TAG, CANARY_VALUE):
            raise self._fail("read_back", "failed",
                             f"GET /data answered {answer.status} without the canary reading {reading_id}", answer)
        self._step("read_back", "ok", "canary reading read back", reading_id=reading_id)
