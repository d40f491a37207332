"""Hand-written hostile input against the real application: oversized and deeply nested bodies, batches
over the limit, control and unicode characters in ids, non-finite numbers, timestamps at the ends of
the calendar and wrong content types.

Every case must be answered 4xx (never 5xx) with a message or detail naming the offending field or
rule, and a rejected request must leave nothing stored. Cases that reach storage run on SQLite and on
PostgreSQL (which refuses NUL in text, so a NUL reaching it would be a 500). The generated counterparts
are tests/api/test_fuzz.py (hypothesis bodies) and tests/api/test_openapi_fuzz.py (schemathesis).
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings

NOW = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
DEFAULT_MAX_BODY_BYTES = Settings().max_body_bytes
DEFAULT_MAX_BATCH = Settings().max_batch_readings
JSON = {"Content-Type": "application/json"}
HOSTILE_CHARACTERS = {
    "nul": "\x00",
    "escape": "\x1b",
    "delete": "\x7f",
    "rtl-override": "\u202e",
    "zero-width-space": "\u200b",
    "emoji": "\U0001f600",
    "accent": "\u00e9",
    "space": " ",
    "quote-and-semicolon": "';",
}


def ts(seconds: int = 0) -> str:
    return (NOW - timedelta(hours=1) + timedelta(seconds=seconds)).isoformat()


def reading(index: int = 0, **fields: Any) -> dict[str, Any]:
    return {"timestamp": ts(index), "tag": "fermenter_ph", "value": 7.0, "device_id": "probe-1", **fields}


def stored(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/data", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return response.json()


def assert_rejected(response, status: int, *, naming: str | None = None, location: list | None = None) -> dict:
    """A 4xx in the common error body whose message (or a detail's location) names the problem."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"], error
    if naming is not None:
        assert naming in error["message"], error
    if location is not None:
        assert location in [detail["loc"] for detail in error["details"]], error
    return error


# --- size and shape of the body ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ingest", "/ingest/batch", "/auth/token"])
def test_body_over_the_default_limit_is_413_naming_the_limit(serve, settings_for, path: str) -> None:
    body = json.dumps([reading(i) for i in range(DEFAULT_MAX_BODY_BYTES // 60)]).encode()
    assert len(body) > DEFAULT_MAX_BODY_BYTES
    with serve(settings_for()) as client:
        response = client.post(path, content=body, headers=JSON)
        assert_rejected(response, 413, naming=f"limit of {DEFAULT_MAX_BODY_BYTES} bytes")
        assert stored(client) == []


@pytest.mark.parametrize("path", ["/ingest", "/ingest/batch", "/auth/token"])
@pytest.mark.parametrize("shape", [(b"[", b"", b"]"), (b'{"a":', b"1", b"}")], ids=["arrays", "objects"])
def test_deeply_nested_json_is_refused_as_invalid_json(serve, settings_for, path, shape) -> None:
    opening, leaf, closing = shape
    body = opening * 10_000 + leaf + closing * 10_000
    with serve(settings_for()) as client:
        response = client.post(path, content=body, headers=JSON)
        error = assert_rejected(response, 422, naming="not valid JSON")
        assert "recursion limit" in error["details"][0]["msg"]
        assert stored(client) == []


def test_nesting_inside_a_field_is_refused_naming_the_field(serve, settings_for) -> None:
    nested: Any = 37.0
    for _ in range(50):  # within the parser's depth limit, so the field validation answers
        nested = [nested]
    with serve(settings_for()) as client:
        response = client.post("/ingest", json=reading(value=nested))
        assert_rejected(response, 422, location=["value"])


def test_batch_over_the_limit_names_the_limit_and_stores_nothing(serve, backend_settings: Settings) -> None:
    with serve(backend_settings) as client:
        response = client.post("/ingest/batch", json=[reading(i) for i in range(DEFAULT_MAX_BATCH + 1)])
        error = assert_rejected(response, 422, naming=f"at most {DEFAULT_MAX_BATCH} readings")
        assert f"{DEFAULT_MAX_BATCH + 1} items" in error["details"][0]["msg"]
        assert stored(client) == []


# --- nothing partial stored ---------------------------------------------------------------------------

GOOD = 300
BAD_BATCHES = {
    # name: (raw body, location named in the error)
    "last-out-of-range": (json.dumps([*map(reading, range(GOOD)), reading(GOOD, value=9.5)]), [GOOD, "value"]),
    "middle-unknown-tag": (json.dumps([*map(reading, range(GOOD)), reading(GOOD, tag="fermenter_tmp"),
                                       reading(GOOD + 1)]), [GOOD, "tag"]),
    "device-record-bad-humidity": (json.dumps({"readings": [
        *map(reading, range(GOOD)),
        {"device_id": "sensor-9", "timestamp": ts(), "temperature": 20.0, "humidity": 140.0}]}),
        ["readings", GOOD, "humidity"]),
    "nul-in-device-id": (json.dumps([*map(reading, range(GOOD)), reading(GOOD, device_id="probe\x00")]),
                         [GOOD, "device_id"]),
}


@pytest.mark.parametrize("name", sorted(BAD_BATCHES))
def test_one_bad_reading_rejects_the_whole_batch(serve, backend_settings: Settings, name: str) -> None:
    body, location = BAD_BATCHES[name]
    with serve(backend_settings) as client:
        response = client.post("/ingest/batch", content=body, headers=JSON)
        assert_rejected(response, 422, location=location)
        assert stored(client) == []
        assert client.get("/sensors/stats").json() == []


def test_non_finite_literal_anywhere_rejects_the_whole_batch(serve, backend_settings: Settings) -> None:
    good = ",".join(json.dumps(reading(i)) for i in range(GOOD))
    body = f'[{good}, {{"timestamp": "{ts()}", "tag": "fermenter_ph", "value": Infinity}}]'
    with serve(backend_settings) as client:
        assert_rejected(client.post("/ingest/batch", content=body, headers=JSON), 422, naming="not valid JSON")
        assert stored(client) == []


# --- characters in ids and tags ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(HOSTILE_CHARACTERS))
def test_hostile_characters_in_ids_and_tags_are_refused_naming_the_field(
    serve, backend_settings: Settings, kind: str
) -> None:
    char = HOSTILE_CHARACTERS[kind]
    with serve(backend_settings) as client:
        assert_rejected(client.post("/ingest", json=reading(device_id=f"probe{char}1")), 422, location=["device_id"])
        assert_rejected(client.post("/ingest", json=reading(tag=f"fermenter{char}ph")), 422, location=["tag"])
        record = {"device_id": f"sensor{char}", "timestamp": ts(), "temperature": 20.0}
        assert_rejected(client.post("/ingest", json=record), 422, location=["device_id"])
        assert_rejected(client.get("/data", params={"device_id": f"probe{char}1"}), 422,
                        location=["query", "device_id"])
        assert_rejected(client.get("/sensors/stats", params={"device_id": f"probe{char}1"}), 422,
                        location=["query", "device_id"])
        assert stored(client) == []


@pytest.mark.parametrize("kind", ["nul", "escape", "delete"])
def test_control_characters_in_a_tag_query_are_refused(serve, backend_settings: Settings, kind: str) -> None:
    char = HOSTILE_CHARACTERS[kind]
    with serve(backend_settings) as client:
        for path in ("/data", "/sensors/anomalies/count"):
            assert_rejected(client.get(path, params={"tag": f"fermenter{char}ph"}), 422, location=["query", "tag"])


def test_printable_unicode_in_a_tag_query_is_a_harmless_miss(serve, backend_settings: Settings) -> None:
    with serve(backend_settings) as client:
        assert client.post("/ingest", json=reading()).status_code == 201
        for tag in ("fermenter\u202eph", "\U0001f600", "ferm\u00e9nter_ph"):
            response = client.get("/data", params={"tag": tag})
            assert response.status_code == 200 and response.json() == [], response.text
        assert len(stored(client)) == 1


def test_hostile_characters_in_ignored_extra_fields_do_not_reach_storage(serve, backend_settings: Settings) -> None:
    """Extra fields are allowed and dropped (seed clients send them); NUL in one must not become a 500."""
    with serve(backend_settings) as client:
        response = client.post("/ingest", json=reading(note="\x00\u202e\U0001f600", firmware_version="\x00"))
        assert response.status_code == 201, response.text
        record = {"device_id": "sensor-1", "timestamp": ts(), "temperature": 20.0, "device_type": "\u202e"}
        assert client.post("/ingest", json=record).status_code == 201
        # Device metadata is stored (seed 004): a control character in it is refused, naming the field.
        refused = client.post("/ingest", json={**record, "status": "\x00"})
        assert refused.status_code == 422 and refused.json()["error"]["details"][0]["loc"] == ["status"]
        assert len(stored(client)) == 2


# --- numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", '"NaN"', '"Infinity"'])
@pytest.mark.parametrize(
    ("template", "location"),
    [
        ('{"timestamp": "%s", "tag": "temperature", "value": %s}', ["value"]),
        ('{"device_id": "sensor-1", "timestamp": "%s", "temperature": %s}', ["temperature"]),
        ('{"device_id": "sensor-1", "timestamp": "%s", "humidity": 50, "latitude": %s}', ["latitude"]),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_field(serve, settings_for, literal, template, location) -> None:
    body = template % (ts(), literal)
    with serve(settings_for()) as client:
        response = client.post("/ingest", content=body, headers=JSON)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        # Bare literals are not JSON at all; overflowing numbers and strings are refused per field.
        assert error["message"] == "body is not valid JSON" or location in [d["loc"] for d in error["details"]], error
        assert stored(client) == []


# --- timestamps ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "rule"),
    [
        ("0001-01-01T00:00:00", "older than"),
        ("0001-01-01T00:00:00+01:00", "years 1-9999"),  # year 0 in UTC
        ("9999-12-31T23:59:59", "in the future"),
        ("9999-12-31T23:59:59-01:00", "years 1-9999"),  # year 10000 in UTC
        ("10000-01-01T00:00:00", "not an ISO-8601"),
        ("-0001-01-01T00:00:00", "not an ISO-8601"),
        ("2025-11-23T10:30:60", "not an ISO-8601"),  # leap second
        ("2025-11-23T10:30:45+24:00", "not an ISO-8601"),
        ("2025-02-29T00:00:00", "not an ISO-8601"),
        ("", "not an ISO-8601"),
        ("2025-11-23T10:30:45\x00", "not an ISO-8601"),
    ],
)
def test_timestamps_at_and_beyond_the_calendar_edges_name_the_rule(serve, settings_for, timestamp, rule) -> None:
    with serve(settings_for()) as client:
        response = client.post("/ingest", json=reading(timestamp=timestamp))
        error = assert_rejected(response, 422, location=["timestamp"])
        assert rule in error["details"][0]["msg"], error
        assert stored(client) == []


@pytest.mark.parametrize(
    ("since", "status"),
    [
        ("0001-01-01T00:00:00", 200),
        ("9999-12-31T23:59:59", 200),
        ("0001-01-01T00:00:00+01:00", 422),
        ("9999-12-31T23:59:59-01:00", 422),
        ("0.5", 422),  # pydantic alone would read this as epoch seconds
        ("1700000000", 422),
        ("yesterday", 422),
    ],
)
def test_query_timestamps_follow_the_ingest_rule(serve, backend_settings: Settings, since: str, status: int) -> None:
    with serve(backend_settings) as client:
        for path in ("/data", "/sensors/anomalies/count"):
            response = client.get(path, params={"since": since})
            if status == 200:
                assert response.status_code == 200, response.text
            else:
                assert_rejected(response, 422, location=["query", "since"])


# --- content types ------------------------------------------------------------------------------------

BODY = json.dumps(reading()).encode()


@pytest.mark.parametrize(
    "request_parts",
    [
        ({"Content-Type": "text/plain"}, BODY, "'text/plain'"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"timestamp=x&tag=y&value=1", "'application/x-www-form-urlencoded'"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x--", "'multipart/form-data'"),
        ({"Content-Type": "application/xml"}, b"<reading/>", "'application/xml'"),
        ({"Content-Type": "application/json", "Content-Encoding": "gzip"}, gzip.compress(BODY), "'gzip'"),
    ],
)
@pytest.mark.parametrize("path", ["/ingest", "/ingest/batch"])
def test_wrong_content_type_or_encoding_is_415_naming_it(serve, settings_for, path, request_parts) -> None:
    headers, body, naming = request_parts
    with serve(settings_for()) as client:
        assert_rejected(client.post(path, content=body, headers=headers), 415, naming=naming)
        assert stored(client) == []


@pytest.mark.parametrize("content_type", [None, "application/json; charset=utf-8", "APPLICATION/JSON"])
def test_json_without_or_with_a_parameterised_type_is_accepted(serve, settings_for, content_type) -> None:
    with serve(settings_for()) as client:
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.post("/ingest", content=BODY, headers=headers)
        assert response.status_code == 201, response.text
        assert len(stored(client)) == 1
