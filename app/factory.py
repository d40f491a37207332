"""What every deployment of the API shares: logging, the error format, token auth and rate
limits, the request-id and body-limit middleware. `create_app` (the ingestion service) and
`create_read_app` (the read-only Lambda) differ only in their routers and lifespan."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fastapi import APIRouter, FastAPI

from app import __version__
from app.errors import install_error_handlers
from app.observability.logging import configure_logging
from app.observability.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from app.observability.route_metrics import RouteMetrics, RouteMetricsMiddleware
from app.security.dependencies import install_security
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
    application = FastAPI(title=title, version=__version__, description=f"{summary} {AUTH_DESCRIPTION}",
                          lifespan=lifespan, telemetry={"tracing": False, "metrics": False, "logs": False})
    application.state.settings = settings
    application.state.accepting = False
    application.state.started = False
    install_error_handlers(application)
    install_security(application, settings)
    for router in routers:
        application.include_router(router)
    # Outermost first: the request id must exist before the body limit can answer with it.
    application.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    application.state.route_metrics = RouteMetrics(settings.metrics_namespace, settings.app_env)
    application.add_middleware(RouteMetricsMiddleware, metrics=application.state.route_metrics)
    application.add_middleware(RequestIdMiddleware)
    return application
