"""`LeanRoute`: a FastAPI route for a hot handler that takes the request and answers it itself."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.routing import APIRoute


class LeanRoute(APIRoute):
    """An APIRoute, in the OpenAPI document like any other, whose handler is called with the Request
    alone and returns its own Response. FastAPI's per-request work is skipped: dependency solving (which
    still parses query, header and cookie parameters for a handler that declares none) and the
    response-model pass. So the handler reads and validates its own body, and its operation's
    `openapi_extra` describes the body and the security a dependency would have documented."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        if list(inspect.signature(self.endpoint).parameters) != ["request"]:
            raise TypeError(f"{self.endpoint.__name__} must take only `request` to be a LeanRoute")
        return self.endpoint
