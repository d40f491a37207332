"""`LeanRoute`: a FastAPI route for a hot handler that takes the request (and at most one query model)
and answers it itself."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError


class LeanRoute(APIRoute):
    """An APIRoute, in the OpenAPI document like any other, whose handler is called with the Request
    (and, when it declares one, its query parameters as one validated pydantic model) and returns its
    own Response. FastAPI's per-request work is skipped: dependency solving (which still parses query,
    header and cookie parameters one by one) and the response-model pass. So the handler calls its guard
    and reads its body itself, and its operation's `openapi_extra` describes the body and the security a
    dependency would have documented. The query model is documented by FastAPI as usual (one parameter
    per field, from `query: Annotated[Model, Query()]`) and validated here in one call; a bad value is
    the same 422 (`RequestValidationError`, located at `["query", field]`) FastAPI would have raised.

    Dependencies (the route's or its router's) would never run, so declaring any is an error.
    """

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        endpoint = self.endpoint
        name = endpoint.__name__
        if self.dependencies:
            raise TypeError(f"{name}: a LeanRoute runs no dependencies; call the guard in the handler")
        parameters = list(inspect.signature(endpoint).parameters)
        if parameters == ["request"]:
            return endpoint
        if len(parameters) != 2 or parameters[0] != "request":
            raise TypeError(f"{name} must take `request` and at most one query model to be a LeanRoute")
        query_model = _query_model(endpoint, parameters[1])

        async def handle(request: Request) -> Response:
            try:
                query = query_model.model_validate(dict(request.query_params))
            except ValidationError as error:
                raise RequestValidationError(_located_in_query(error)) from None
            return await endpoint(request, query)

        return handle


def _query_model(endpoint: Callable[..., Any], parameter: str) -> type[BaseModel]:
    annotation = typing.get_type_hints(endpoint)[parameter]
    if not (inspect.isclass(annotation) and issubclass(annotation, BaseModel)):
        raise TypeError(f"{endpoint.__name__}: `{parameter}` must be a pydantic model of query parameters")
    return annotation


def _located_in_query(error: ValidationError) -> list[dict[str, Any]]:
    return [{**item, "loc": ("query", *item["loc"])} for item in error.errors(include_url=False)]
