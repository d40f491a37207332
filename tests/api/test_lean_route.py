"""LeanRoute (app/api/lean_route.py): what it refuses to build, how it validates a query model, and that
the apps whose routes are all lean still document the bearer scheme they refer to."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from app.api.lean_route import LeanRoute
from app.errors import install_error_handlers
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

