"""One error format for every response:

    {"error": {"code": "validation_error", "message": "...", "details": [{"loc": [...], "msg": "..."}]},
     "request_id": "..."}

and the one place a service's `ServiceUnavailable` becomes 503 with Retry-After.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.observability.context import current_request_id
from app.services.unavailable import ServiceUnavailable

# How long a client should wait before retrying after a 503 (storage or database unavailable).
RETRY_AFTER_SECONDS = "5"


class ApiError(Exception):
    """An error the API answers with `status` and the common body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "details": details or []},
        "request_id": current_request_id(),
    }


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        status_code=status, content=jsonable_encoder(error_body(code, message, details)), headers=headers
    )


_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
          429: "rate_limited", 503: "unavailable"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.details, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [part for part in item["loc"] if part != "body"], "msg": item["msg"], "type": item["type"]}
            for item in error.errors()
        ]
        fields = ", ".join(".".join(map(str, d["loc"])) or "body" for d in details[:5])
        return error_response(422, "validation_error", f"invalid request: {fields}", details)

    # Every "retry later" of the service layer (writes and reads alike) is answered here, and only here.
    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(_: Request, error: ServiceUnavailable) -> JSONResponse:
        return error_response(503, error.code, error.message, headers={"Retry-After": RETRY_AFTER_SECONDS})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(error.status_code, "error")
        return error_response(error.status_code, code, str(error.detail), headers=getattr(error, "headers", None))
