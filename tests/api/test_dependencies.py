"""The typed dependencies (app/api/deps.py): the container is attached once, and no dependency of any
route runs in the threadpool (a sync `def` dependency would, on every request)."""

from __future__ import annotations

import inspect

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.container import Services
from app.main import create_app
from app.read_api import create_read_app
from app.settings import Settings


def _calls(dependant: Dependant) -> list:
    found = []
    for sub in dependant.dependencies:
        found.append(sub.call)
        found += _calls(sub)
    return found


def _runs_on_the_loop(call) -> bool:
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


@pytest.mark.parametrize("factory", [create_app, create_read_app], ids=["service", "read-api"])
def test_every_route_dependency_is_async(factory) -> None:
    application: FastAPI = factory(Settings())
    routes = [route for route in application.routes if isinstance(route, APIRoute)]
    calls = [call for route in routes for call in _calls(route.dependant)]
    assert len(calls) >= len(routes) // 2  # the walk found the guards and providers
    assert [getattr(call, "__name__", repr(call)) for call in calls if not _runs_on_the_loop(call)] == []


def test_the_container_is_attached_once_with_what_the_handlers_need_before_start() -> None:
    settings = Settings()
    application = create_app(settings)
    services = application.state.services
    assert isinstance(services, Services)
    assert services.settings is settings
    assert None not in (services.rules, services.metrics, services.route_metrics, services.tokens, services.limiter)
    assert (services.ingest, services.queries, services.started, services.accepting) == (None, None, False, False)
