"""GET /dashboard (the live chart page) and the /static mount that serves its script, style and the
vendored Chart.js (`make vendor` copies it from node_modules into app/static/vendor/; never a CDN).

The page needs a token with the `read` scope. API clients send it as `Authorization: Bearer`; a browser
navigation cannot, so `?token=` is accepted too and goes through the same guard. The page's script then
calls the API with that token in the Authorization header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from app.security.dependencies import bearer_token, require_scope
from app.security.tokens import Principal

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
DASHBOARD_PAGE = STATIC_DIR / "dashboard.html"
READ_SCOPE = "read"

# Only this origin may provide scripts, styles and API calls: a vendored library cannot be swapped for a
# CDN copy by accident, and an injected script could not send the token elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The URL carries a token: keep it out of caches and out of Referer headers.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(tags=["dashboard"])
_require_read = require_scope(READ_SCOPE)


async def require_read_from_header_or_query(
    request: Request,
    response: Response,
    token: Annotated[str | None, Query(description="read token, for browser navigation")] = None,
) -> Principal:
    """The API's `require_scope("read")` guard (verification, scope, rate limit) for a token taken from
    `?token=` when present, else from the Authorization header (401 when neither is given)."""
    if token is None:
        token = await bearer_token(request)
    return await _require_read(request=request, response=response, token=token)


@router.get("/dashboard", include_in_schema=False)
async def dashboard(_: Annotated[Principal, Depends(require_read_from_header_or_query)]) -> FileResponse:
    return FileResponse(DASHBOARD_PAGE, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


def mount_static(app: FastAPI) -> None:
    """Serve app/static at /static (public: script, style and Chart.js hold no data)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
