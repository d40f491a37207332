"""The one pure ASGI layer in front of the routes: the request's correlation id, the body size limit,
the per-route metrics and the browser headers.

One layer rather than four: each layer would add a coroutine frame and a `send` wrapper to every
request, and this is the hot path (`make bench`). Plain ASGI rather than Starlette's
`BaseHTTPMiddleware`, which runs every request in an extra task and re-streams the response through a
memory channel; this only wraps `receive`/`send` once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_body
from app.observability.context import reset_request_id, set_request_id
from app.observability.route_metrics import UNMATCHED_ROUTE, RouteMetrics
from app.security.page_headers import with_page_headers

REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")

_logger = logging.getLogger("app.request")


class EdgeMiddleware:
    """What every request passes on its way in and out, in this order:

    - **Correlation id.** A sane incoming `X-Request-ID` (1-128 of `[A-Za-z0-9._-]`) is kept, anything
      else is replaced by a uuid4 hex. The id is in the request-id context variable while the request
      runs and is echoed in the `x-request-id` response header (HTTP and WebSocket scopes).
    - **Body limit.** A declared `Content-Length` over `max_body_bytes` is answered 413 (common error
      body, code `payload_too_large`) before the app runs. A chunked or understated body is counted as
      the app reads it; the read that passes the limit raises `PayloadTooLarge`, and whatever the app
      then does (lets it propagate, turns it into its own response, swallows it) the client gets the
      413 as long as the response had not started. Nothing is buffered.
    - **Route metrics** (when given): each HTTP request's status and duration under its route template.
    - **Browser headers** (app/security/page_headers.py) on every HTTP response.
    - **Last resort.** An exception escaping the app is logged here, with the id, and answered with a
      500 in the common error body: Starlette's own last-resort handler sits outside all user
      middleware, where neither the id nor the headers would exist any more.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, route_metrics: RouteMetrics | None = None) -> None:
        if max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.route_metrics = route_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            token = set_request_id(_incoming_request_id(scope) or _new_request_id())
            try:
                await self.app(scope, receive, send)
            except Exception:
                _logger.exception("unhandled error in WEBSOCKET %s", scope.get("path", ""))
                raise  # the server closes the connection
            finally:
                reset_request_id(token)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = _incoming_request_id(scope) or _new_request_id()
        id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500  # an exception before the response starts is answered 500 below

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != REQUEST_ID_HEADER]
                headers.append(id_header)
                message = {**message, "headers": with_page_headers(headers)}
            await send(message)

        token = set_request_id(request_id)
        guard = _BodyLimitGuard(receive, send_with_headers, self.max_body_bytes)
        try:
            declared_length = _declared_content_length(scope)
            if declared_length is not None and declared_length > self.max_body_bytes:
                await guard.reject()
                return
            try:
                await self.app(scope, guard.receive, guard.send)
            except PayloadTooLarge:
                if guard.app_response_started:
                    raise
            if guard.exceeded and not guard.rejected and not guard.app_response_started:
                await guard.reject()
        except Exception:
            _logger.exception("unhandled error in %s %s", scope.get("method"), scope.get("path", ""))
            if guard.app_response_started or guard.rejected:
                raise  # nothing more can be said to the client; the server closes the connection
            await _send_error(send_with_headers, 500, "internal_error", "internal server error")
        finally:
            reset_request_id(token)
            if self.route_metrics is not None:
                path = getattr(scope.get("route"), "path", None)
                name = f"{scope['method']} {path}" if path else UNMATCHED_ROUTE
                self.route_metrics.record(name, status, (time.perf_counter() - started) * 1000)


class PayloadTooLarge(HTTPException):
    """Raised from `receive` once the body passes the limit.

    An HTTPException on purpose: FastAPI re-raises those from body parsing, where any other exception
    becomes a 400 "error parsing the body".
    """

    def __init__(self, max_body_bytes: int) -> None:
        super().__init__(status_code=413, detail=_too_large_message(max_body_bytes))


class _BodyLimitGuard:
    """One request's byte count, and who has answered: the app or the guard (with the 413)."""

    def __init__(self, receive: Receive, send: Send, max_body_bytes: int) -> None:
        self._receive = receive
        self._send = send
        self._max_body_bytes = max_body_bytes
        self._received_bytes = 0
        self.exceeded = False
        self.rejected = False
        self.app_response_started = False

    async def receive(self) -> Message:
        if self.exceeded:
            raise PayloadTooLarge(self._max_body_bytes)
        message = await self._receive()
        if message["type"] == "http.request":
            self._received_bytes += len(message.get("body", b""))
            if self._received_bytes > self._max_body_bytes:
                self.exceeded = True
                raise PayloadTooLarge(self._max_body_bytes)
        return message

    async def send(self, message: Message) -> None:
        if self.rejected:
            return  # the 413 went out instead of the app's response; drop the rest of it
        if message["type"] == "http.response.start":
            if self.exceeded:
                await self.reject()
                return
            self.app_response_started = True
        await self._send(message)

    async def reject(self) -> None:
        self.rejected = True
        await _send_payload_too_large(self._send, self._max_body_bytes)


def _new_request_id() -> str:
    """What `uuid.uuid4().hex` returns (version 4, RFC 4122 variant), without building a UUID object:
    this runs for every request."""
    random = bytearray(os.urandom(16))
    random[6] = (random[6] & 0x0F) | 0x40
    random[8] = (random[8] & 0x3F) | 0x80
    return random.hex()


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:  # ASGI servers lower-case header names
            return value.decode("ascii") if _SANE_REQUEST_ID.fullmatch(value) else None
    return None


def _declared_content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # malformed: the server's HTTP parser rejects it, not this middleware
    return None


def _too_large_message(max_body_bytes: int) -> str:
    return f"request body exceeds the limit of {max_body_bytes} bytes"


async def _send_payload_too_large(send: Send, max_body_bytes: int) -> None:
    # Connection: close, because the rest of the body is left unread on the connection.
    await _send_error(
        send, 413, "payload_too_large", _too_large_message(max_body_bytes), [(b"connection", b"close")]
    )


async def _send_error(
    send: Send, status: int, code: str, message: str, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body: dict[str, Any] = error_body(code, message)
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode("ascii")),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
