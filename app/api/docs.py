"""GET /docs: Swagger UI from the image, not a CDN, under the pages' CSP (no inline script).

FastAPI's own /docs and /redoc pages load Swagger UI and ReDoc from a public CDN through an inline script;
both are switched off in `build_app`. This page loads the Swagger UI files `make vendor` copied from the
pinned `swagger-ui-dist` npm package into app/static/vendor/swagger-ui/, and a small static script
(app/static/docs-init.js) starts it on /openapi.json.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.pages import page_response

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs() -> Response:
    return page_response("docs", headers={"Cache-Control": "no-cache"})
