"""The ceiling target of `make bench`: a bare ASGI app that answers the service's paths with canned JSON.

    uvicorn loadtests.bench.ceiling:app   (the bench serves it with the app's own uvicorn command line)

No framework, no database, no validation: whatever throughput Locust reaches against this app on a
machine is the most that machine and that load generator can show for the same request mix, so the
app's throughput is reported as a ratio to it. The contract mirrors the service's success answers
(app/api/*.py): a token for `POST /auth/token`, 201 with an id per reading for `POST /ingest` and
`POST /ingest/batch`, empty results for the read paths, ok for `/health` and `/ready`. The request
body is read (the server must receive it) but parsed only as far as counting a batch's readings, so
that a client checking `accepted` against what it sent sees the numbers it expects.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

TOKEN = {"access_token": "ceiling-token-not-a-jwt", "token_type": "bearer", "expires_in": 3600}
_ids = itertools.count(1)


def _json(status: int, payload: object) -> tuple[int, bytes]:
    return status, json.dumps(payload, separators=(",", ":")).encode()


def _readings_in(body: bytes) -> int:
    """A batch is a JSON list or {"readings": [...]}; anything else counts as one reading."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return 1
    if isinstance(parsed, dict):
        parsed = parsed.get("readings", [parsed])
    return len(parsed) if isinstance(parsed, list) else 1


def _ingested(count: int) -> list[dict]:
    return [{"status": "success", "id": next(_ids), "is_anomaly": False} for _ in range(count)]


def _batch(body: bytes) -> tuple[int, bytes]:
    results = _ingested(_readings_in(body))
    return _json(201, {"status": "success", "accepted": len(results), "duplicates": 0, "results": results})


ROUTES: dict[tuple[str, str], Callable[[bytes], tuple[int, bytes]]] = {
    ("POST", "/auth/token"): lambda _: _json(200, TOKEN),
    ("POST", "/ingest"): lambda _: _json(201, _ingested(1)[0]),
    ("POST", "/ingest/batch"): _batch,
    ("GET", "/data"): lambda _: _json(200, []),
    ("GET", "/sensors/stats"): lambda _: _json(200, []),
    ("GET", "/sensors/anomalies/count"): lambda _: _json(200, {"total": 0, "by_tag": {}}),
    ("GET", "/health"): lambda _: _json(200, {"status": "ok", "version": "ceiling"}),
    ("GET", "/ready"): lambda _: _json(200, {"status": "ready", "database": "none"}),
}


def answer(method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """(status, JSON body) for one request: the whole behaviour of the ceiling."""
    route = ROUTES.get((method, path))
    if route is None:
        return _json(404, {"error": {"code": "not_found", "message": f"{method} {path} is not served"},
                           "request_id": None})
    return route(body)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    status, payload = answer(scope["method"], scope["path"], body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
