"""LeanRoute and LeanDispatch (app/api/lean_route.py): what a lean route refuses to build, how it
validates a query model, that an app whose routes are all lean still documents the bearer scheme they
refer to, and that the dispatch keeps what FastAPI's router gave those routes (errors, route, 405s)."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from app.api.lean_route import LeanRoute, dispatch_lean_routes
from app.errors import ApiError, install_error_handlers
from app.observability.middleware import EdgeMiddleware
from app.read_api import create_read_app
from app.settings import Settings


class Page(BaseModel):
    name: Annotated[str | None, Field(pattern=r"^[a-z]+$", description="only this name")] = None
    size: Annotated[int, Field(ge=1, le=50)] = 10


async def page(request: Request, query: Annotated[Page, Query()]) -> Response:
    return Response(f"{query.name}:{query.size}", media_type="text/plain")


@pytest.fixture
def client() -> TestClient:
    application = FastAPI()
    install_error_handlers(application)
    router = APIRouter(route_class=LeanRoute)
    router.add_api_route("/page", page, methods=["GET"])
    application.include_router(router)
    return TestClient(application)


def test_a_lean_route_hands_the_validated_query_model_to_its_handler(client: TestClient) -> None:
    assert client.get("/page", params={"name": "abc", "size": "7", "other": "ignored"}).text == "abc:7"
    assert client.get("/page").text == "None:10"


def test_a_bad_query_value_is_the_common_422_located_in_the_query(client: TestClient) -> None:
    response = client.get("/page", params={"name": "ABC", "size": "0"})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [(detail["loc"], detail["type"]) for detail in error["details"]] == [
        (["query", "name"], "string_pattern_mismatch"), (["query", "size"], "greater_than_equal")]
    assert error["message"] == "invalid request: query.name, query.size"


def test_the_query_model_is_documented_one_parameter_per_field(client: TestClient) -> None:
    parameters = client.get("/openapi.json").json()["paths"]["/page"]["get"]["parameters"]

    assert [(p["name"], p["in"], p["required"]) for p in parameters] == [("name", "query", False),
                                                                         ("size", "query", False)]
    assert parameters[0]["description"] == "only this name"
    assert parameters[1]["schema"]["maximum"] == 50


def test_a_lean_route_refuses_a_parameter_that_is_not_a_query_model() -> None:
    router = APIRouter(route_class=LeanRoute)

    async def with_a_parameter(request: Request, limit: int = 10) -> Response:
        return Response()

    with pytest.raises(TypeError, match="`limit` must be a pydantic model of query parameters"):
        router.add_api_route("/lean", with_a_parameter, methods=["GET"])


def test_a_lean_route_refuses_dependencies_it_would_never_run() -> None:
    async def guard() -> None:
        raise AssertionError("never called")

    router = APIRouter(route_class=LeanRoute, dependencies=[Depends(guard)])

    with pytest.raises(TypeError, match="page: a LeanRoute runs no dependencies"):
        router.add_api_route("/page", page, methods=["GET"])


def test_the_read_app_defines_the_bearer_scheme_its_lean_routes_refer_to() -> None:
    """No route of the read-only app uses the scheme as a dependency any more, so FastAPI alone would
    leave the operations' `security` pointing at nothing."""
    schema = create_read_app(Settings(database_url="sqlite+aiosqlite:///:memory:")).openapi()

    assert schema["components"]["securitySchemes"]["BearerToken"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "Access token from `POST /auth/token` (OAuth2 client credentials)."}
    assert schema["paths"]["/data"]["get"]["security"] == [{"BearerToken": []}]



# --- LeanDispatch: lean routes answered without FastAPI's router --------------------------------------


class Refused(Exception):
    pass


def _dispatching_app(*, prefix: str = "") -> FastAPI:
    application = FastAPI()
    install_error_handlers(application)

    @application.exception_handler(Refused)
    async def refused(_: Request, error: Refused) -> Response:
        return Response(f"refused: {error}", status_code=409)

    router = APIRouter(route_class=LeanRoute)

    async def echo(request: Request) -> Response:
        body = await request.body()
        if body == b"refuse":
            raise Refused("by the handler")
        if body == b"api-error":
            raise ApiError(418, "teapot", "short and stout")
        route = request.scope["route"]
        via = "router" if "router" in request.scope else "dispatch"  # FastAPI's router sets scope["router"]
        return Response(f"{route.path} {request.scope['endpoint'].__name__} {body.decode()} via {via}")

    router.add_api_route("/echo", echo, methods=["POST"])
    application.include_router(router, prefix=prefix)
    dispatch_lean_routes(application, [router])
    application.add_middleware(EdgeMiddleware, max_body_bytes=16)
    return application


def test_dispatch_answers_a_lean_route_with_its_route_in_the_scope() -> None:
    with TestClient(_dispatching_app()) as client:
        response = client.post("/echo", content=b"hello")

    assert response.status_code == 200 and response.text == "/echo echo hello via dispatch"
    assert "x-request-id" in response.headers  # still inside the edge middleware


def test_dispatch_errors_go_through_the_apps_exception_handlers() -> None:
    with TestClient(_dispatching_app()) as client:
        refused = client.post("/echo", content=b"refuse")
        teapot = client.post("/echo", content=b"api-error")
        too_large = client.post("/echo", content=b"x" * 17)

    assert (refused.status_code, refused.text) == (409, "refused: by the handler")
    assert teapot.status_code == 418 and teapot.json()["error"]["code"] == "teapot"
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "payload_too_large"


def test_other_methods_and_paths_still_reach_fastapis_router() -> None:
    with TestClient(_dispatching_app()) as client:
        wrong_method = client.get("/echo")
        trailing_slash = client.post("/echo/", content=b"x", follow_redirects=False)
        unknown = client.post("/elsewhere", content=b"x")

    assert wrong_method.status_code == 405
    assert trailing_slash.status_code == 307 and trailing_slash.headers["location"].endswith("/echo")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def test_a_lean_route_under_a_prefix_is_refused_at_build_time() -> None:
    with pytest.raises(ValueError, match="lean route echo: served at '/v1/echo', not '/echo'"):
        _dispatching_app(prefix="/v1")
