"""The OpenAPI document states the validation the service enforces (known tags, per-tag ranges,
batch and body limits), so clients and fuzzers generate bodies the service accepts.

The rules are settings (tag ranges are configurable), so they are written into the generated
document when it is first built, from the same `Settings` the validators use.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from app.readings import DEVICE_METRICS
from app.settings import Settings

INGEST_PATHS = ("/ingest", "/ingest/batch")


def document_validation(application: FastAPI, settings: Settings) -> None:
    """Make `application.openapi()` return a document that states `settings`' validation rules."""
    generate = application.openapi

    def openapi() -> dict[str, Any]:
        if application.openapi_schema is None:
            # A copy: FastAPI shares the routes' `openapi_extra` dicts with the document it builds.
            document = copy.deepcopy(generate())
            for path in INGEST_PATHS:
                operation = document["paths"][path]["post"]
                _state_rules(operation["requestBody"], settings)
                operation["description"] += (
                    f" Limits: at most {settings.max_batch_readings} readings per request and "
                    f"{settings.max_body_bytes} bytes per body (413 beyond); known tags and their ranges "
                    "are in the request schema."
                )
            application.openapi_schema = document
        return application.openapi_schema

    application.openapi = openapi  # type: ignore[method-assign]


def _bounds(low: float | None, high: float | None) -> dict[str, float]:
    return {k: v for k, v in (("minimum", low), ("maximum", high)) if v is not None}


def _state_rules(node: Any, settings: Settings) -> None:
    ranges = settings.tag_ranges
    if isinstance(node, list):
        for item in node:
            _state_rules(item, settings)
        return
    if not isinstance(node, dict):
        return
    if node.get("title") == "ReadingIn":
        node["properties"]["tag"]["enum"] = sorted(ranges)
        # One variant per tag: its value range.
        node["oneOf"] = [
            {"properties": {"tag": {"const": tag}, "value": {"type": "number", **_bounds(*ranges[tag])}}}
            for tag in sorted(ranges)
        ]
    elif node.get("title") == "DeviceRecordIn":
        for metric in DEVICE_METRICS:
            if metric in ranges:
                node["properties"][metric].setdefault("anyOf", [{"type": "number"}, {"type": "null"}])
                node["properties"][metric]["anyOf"] = [
                    {"type": "number", **_bounds(*ranges[metric])} if part.get("type") == "number" else part
                    for part in node["properties"][metric]["anyOf"]
                ]
    elif node.get("type") == "array":
        node["maxItems"] = settings.max_batch_readings
    for value in node.values():
        _state_rules(value, settings)
