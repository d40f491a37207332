"""The OpenAPI document states the validation rules: bodies valid against it pass the validators,
and bodies the validators reject (unknown tag, out of range, oversized batch) break the schema."""

from __future__ import annotations

import jsonschema
import pytest

from app.main import create_app
from app.settings import Settings


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(tag_ranges={"fermenter_temp": (30.0, 50.0), "humidity": (0.0, 100.0)}, max_batch_readings=3)


@pytest.fixture(scope="module")
def document(settings: Settings) -> dict:
    return create_app(settings).openapi()


def _body_schema(document: dict, path: str) -> dict:
    schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return {**schema, "components": document.get("components", {})}


def _valid(schema: dict, body: object) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(body)


READING = {"timestamp": "2025-11-23T10:30:45", "tag": "fermenter_temp", "value": 37.2}


def test_single_reading_schema_states_known_tags_and_ranges(document: dict) -> None:
    schema = _body_schema(document, "/ingest")
    assert _valid(schema, READING)
    assert not _valid(schema, {**READING, "tag": "unknown_tag"})
    assert not _valid(schema, {**READING, "value": 50.5})
    assert not _valid(schema, {**READING, "tag": "humidity", "value": -1})


def test_device_record_metrics_carry_their_ranges(document: dict) -> None:
    schema = _body_schema(document, "/ingest")
    record = {"device_id": "d-1", "timestamp": "2025-11-23T10:30:45", "humidity": 55.0}
    assert _valid(schema, record)
    assert not _valid(schema, {**record, "humidity": 101.0})


def test_batch_schema_states_the_batch_limit(document: dict) -> None:
    schema = _body_schema(document, "/ingest/batch")
    assert _valid(schema, [READING] * 3)
    assert not _valid(schema, [READING] * 4)
    assert not _valid(schema, {"readings": [READING] * 4})


def test_operations_state_the_body_limit(document: dict, settings: Settings) -> None:
    for path in ("/ingest", "/ingest/batch"):
        assert f"{settings.max_body_bytes} bytes" in document["paths"][path]["post"]["description"]
