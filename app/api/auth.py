"""`POST /auth/token`: the OAuth2 client-credentials token endpoint for machine clients.

Accepts a JSON body or an `application/x-www-form-urlencoded` form (what OAuth2 libraries send).
Not behind the per-client rate limit: the caller is not authenticated yet, and client secrets are random
machine credentials that cannot be guessed online.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json

from app.api.deps import TokenServiceDep
from app.errors import ApiError

router = APIRouter(tags=["auth"])

CLIENT_CREDENTIALS = "client_credentials"
JSON_MEDIA_TYPE = "application/json"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


class TokenRequest(BaseModel):
    """Client credentials, as a JSON body."""

    model_config = ConfigDict(extra="ignore")

    grant_type: str | None = Field(default=None, description=f"Optional in JSON; must be {CLIENT_CREDENTIALS!r}.")
    client_id: str = Field(min_length=1, max_length=64, examples=["simulator"])
    client_secret: str = Field(min_length=1, max_length=1024, examples=["simulator-local-secret"])
    scope: str | None = Field(
        default=None, max_length=256, examples=["ingest read"],
        description="Space-separated scopes to request; omitted means all of the client's scopes.",
    )


class FormTokenRequest(TokenRequest):
    """Client credentials, as an OAuth2 form body (RFC 6749 section 4.4)."""

    grant_type: str = Field(description=f"Must be {CLIENT_CREDENTIALS!r}.", examples=[CLIENT_CREDENTIALS])


class TokenResponse(BaseModel):
    """An OAuth2 access token response (RFC 6749 section 5.1)."""

    access_token: str = Field(description="HS256 JWT to send as `Authorization: Bearer <token>`.")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires.", examples=[3600])
    scope: str = Field(description="Space-separated granted scopes.", examples=["ingest read"])


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]]


class ErrorResponse(BaseModel):
    """The service's common error body."""

    error: ErrorDetail
    request_id: str | None


_REQUEST_BODY_DOC = {
    "required": True,
    "content": {
        JSON_MEDIA_TYPE: {"schema": TokenRequest.model_json_schema()},
        FORM_MEDIA_TYPE: {"schema": FormTokenRequest.model_json_schema()},
    },
}


@router.post(
    "/auth/token",
    summary="Obtain an access token (OAuth2 client credentials)",
    description=(
        "Exchanges a machine client's id and secret for a short-lived bearer token. Send JSON "
        "(`client_id`, `client_secret`, optional `scope`) or an OAuth2 form "
        f"(`grant_type={CLIENT_CREDENTIALS}`, `client_id`, `client_secret`, optional `scope`)."
    ),
    response_model=TokenResponse,
    responses={
        400: {"model": ErrorResponse, "description": "`unsupported_grant_type` or `invalid_scope`"},
        401: {"model": ErrorResponse, "description": "`invalid_client`: unknown client or wrong secret"},
        415: {"model": ErrorResponse, "description": "`unsupported_media_type`: neither JSON nor form"},
        422: {"model": ErrorResponse, "description": "`validation_error`: a field is missing or invalid"},
    },
    openapi_extra={"requestBody": _REQUEST_BODY_DOC},
)
async def issue_token(request: Request, response: Response, tokens: TokenServiceDep) -> TokenResponse:
    credentials = await _read_credentials(request)
    if credentials.grant_type is not None and credentials.grant_type != CLIENT_CREDENTIALS:
        raise ApiError(400, "unsupported_grant_type",
                       f"grant_type must be {CLIENT_CREDENTIALS!r}, got {credentials.grant_type!r}")
    requested_scopes = set(credentials.scope.split()) if credentials.scope else None
    issued = tokens.issue(credentials.client_id, credentials.client_secret, requested_scopes)
    # RFC 6749 section 5.1: token responses must not be cached.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return TokenResponse(**issued)


async def _read_credentials(request: Request) -> TokenRequest:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == FORM_MEDIA_TYPE:
        form = await request.form()
        return _validate(FormTokenRequest, dict(form))
    if media_type == JSON_MEDIA_TYPE or media_type.endswith("+json"):
        try:
            # pydantic's parser: bounded nesting depth (stdlib json raises RecursionError, a 500).
            body = from_json(await request.body())
        except ValueError as error:
            raise ApiError(422, "validation_error", "invalid request: body is not valid JSON",
                           details=[{"loc": [], "msg": str(error), "type": "json_invalid"}]) from None
        return _validate(TokenRequest, body)
    raise ApiError(415, "unsupported_media_type",
                   f"send {JSON_MEDIA_TYPE} or {FORM_MEDIA_TYPE}, not {media_type or 'no content type'!r}")


def _validate(model: type[TokenRequest], body: object) -> TokenRequest:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        # Same shape as the service's RequestValidationError responses (app/errors.py).
        details = [{"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]} for item in error.errors()]
        fields = ", ".join(".".join(map(str, detail["loc"])) or "body" for detail in details[:5])
        raise ApiError(422, "validation_error", f"invalid request: {fields}", details=details) from None
