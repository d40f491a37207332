"""What every deployment of the API shares: logging, the error format, token auth and rate
limits, the request-id and body-limit middleware, the browser headers and the self-hosted /docs page.
`create_app` (the ingestion service) and `create_read_app` (the read-only Lambda) differ only in their
routers and lifespan."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fastapi import APIRouter, FastAPI

from app import __version__
from app.api import docs
from app.api.lean_route import dispatch_lean_routes
from app.api.static import mount_static
from app.errors import install_error_handlers
from app.observability.logging import configure_logging
from app.observability.middleware import EdgeMiddleware
from app.observability.route_metrics import RouteMetrics
from app.security.dependencies import document_bearer_scheme, install_security
from app.settings import Settings

AUTH_DESCRIPTION = (
    "Authenticate with POST /auth/token, then send `Authorization: Bearer <token>`. "
    "Timestamps without a timezone are treated as UTC."
)


def build_app(
    settings: Settings, *, title: str, summary: str, lifespan: Callable, routers: Iterable[APIRouter]
) -> FastAPI:
    configure_logging(settings.log_level)
    # telemetry off: the service reports through its EMF metrics and JSON logs; FastAPI's native
    # OpenTelemetry would otherwise look up the global OTel providers on every request.
    # docs_url/redoc_url off: FastAPI's pages load Swagger UI/ReDoc from a CDN through an inline script;
    # app/api/docs.py serves Swagger UI from the image instead.
    application = FastAPI(title=title, version=__version__, description=f"{summary} {AUTH_DESCRIPTION}",
                          lifespan=lifespan, telemetry={"tracing": False, "metrics": False, "logs": False},
                          docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None)
    install_error_handlers(application)
    services = install_security(application, settings)  # the typed container: app/container.py
    routers = (*routers, docs.router)
    for router in routers:
        application.include_router(router)
    mount_static(application)
    document_bearer_scheme(application)
    services.route_metrics = RouteMetrics(settings.metrics_namespace, settings.app_env)
    dispatch_lean_routes(application, routers)  # the innermost middleware
    application.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes,
                               route_metrics=services.route_metrics)
    return application
