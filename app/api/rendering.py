"""JSON answers for the hot routes, encoded once by pydantic's Rust serializer.

The routes keep their `response_model` (OpenAPI documents it; schemathesis checks the bodies against
it), but return a ready `Response`, which FastAPI sends as is: no per-request validation of a body the
service built itself from typed values. `pydantic_core.to_json` is the serializer FastAPI's own fast
path uses, so the bytes are the same (datetimes ISO-8601, UTC as `Z`; NaN/inf as null).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Response
from pydantic_core import to_json


def json_response(content: Any, status_code: int = 200, headers_from: Response | None = None, *,
                  headers: Mapping[str, str] | None = None) -> Response:
    """`content` as JSON, with `headers` and the headers dependencies put on `headers_from` (e.g.
    `X-RateLimit-*`)."""
    body = to_json(content, inf_nan_mode="null")
    response = Response(body, status_code=status_code, headers=headers, media_type="application/json")
    if headers_from is not None:
        response.headers.raw.extend(headers_from.headers.raw)
    return response
