"""The ingest API against SQLite and real PostgreSQL: seed payloads, batches, duplicates, queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.main import create_app
from app.settings import Settings
from tests.support.app import SIMULATOR

START = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=2)


def ts(seconds: int) -> str:
    """Seed-style naive timestamps (UTC), one per second from a fixed recent start."""
    return (START + timedelta(seconds=seconds)).isoformat()


def test_seed_002_single_reading_is_stored_and_answered_201(serve, backend_settings: Settings) -> None:
    with serve(backend_settings) as client:
        response = client.post("/ingest", json={"timestamp": ts(0), "tag": "fermenter_temp", "value": 37.2})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "success" and isinstance(body["id"], int) and body["is_anomaly"] is False
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(response.headers)

        (stored,) = client.get("/data", params={"tag": "fermenter_temp"}).json()
        assert stored["id"] == body["id"] and stored["value"] == 37.2
        assert stored["timestamp"].startswith(ts(0)) and stored["timestamp"].endswith(("Z", "+00:00"))


def test_both_ingest_routes_count_against_the_bucket_and_report_it(serve, settings_for) -> None:
    """The ingest handlers call the guard themselves (no FastAPI dependency): each request is counted once,
    and the answer carries the bucket's headers, as a dependency-guarded route's does."""
    with serve(settings_for(), credentials=SIMULATOR) as client:
        single = client.post("/ingest", json={"timestamp": ts(0), "tag": "fermenter_temp", "value": 37.2})
        batch = client.post("/ingest/batch", json=[{"timestamp": ts(1), "tag": "fermenter_temp", "value": 37.3}])
        read = client.get("/sensors/stats")
    assert (single.status_code, batch.status_code, read.status_code) == (201, 201, 200)
    remaining = [int(answer.headers["x-ratelimit-remaining"]) for answer in (single, batch, read)]
    assert remaining[0] - 1 == remaining[1] and remaining[1] - 1 == remaining[2], remaining
    assert single.headers["x-ratelimit-limit"] == batch.headers["x-ratelimit-limit"] == read.headers["x-ratelimit-limit"]


def test_lean_operations_document_their_bearer_security(settings_for) -> None:
    schema = create_app(settings_for()).openapi()
    assert "BearerToken" in schema["components"]["securitySchemes"]
    for method, path in (("post", "/ingest"), ("post", "/ingest/batch"), ("get", "/data"),
                         ("get", "/sensors/stats"), ("get", "/sensors/anomalies/count")):
        assert schema["paths"][path][method]["security"] == [{"BearerToken": []}], path


def test_spike_after_60_steady_values_is_flagged(serve, backend_settings: Settings) -> None:
    with serve(backend_settings) as client:
        for second in range(60):
            value = 37.0 + (0.1 if second % 2 else -0.1)
            response = client.post("/ingest", json={"timestamp": ts(second), "tag": "fermenter_temp", "value": value})
            assert response.status_code == 201 and response.json()["is_anomaly"] is False
        spike = client.post("/ingest", json={"timestamp": ts(60), "tag": "fermenter_temp", "value": 48.5})
        assert spike.status_code == 201 and spike.json()["is_anomaly"] is True
        assert client.get("/sensors/anomalies/count").json() == {"total": 1, "by_tag": {"fermenter_temp": 1}}


def test_seed_002_batch_is_stored_atomically(serve, backend_settings: Settings) -> None:
    batch = [
        {"timestamp": ts(0), "tag": "fermenter_temp", "value": 37.2},
        {"timestamp": ts(0), "tag": "fermenter_ph", "value": 7.1},
        {"timestamp": ts(0), "tag": "agitator_rpm", "value": 450},
    ]
    with serve(backend_settings) as client:
        response = client.post("/ingest/batch", json=batch)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "success" and body["accepted"] == 3 and body["duplicates"] == 0
        assert [r["status"] for r in body["results"]] == ["success"] * 3
        assert len({r["id"] for r in body["results"]}) == 3
        wrapped = client.post("/ingest/batch", json={"readings": [{"timestamp": ts(1), "tag": "fermenter_ph", "value": 7.0}]})
        assert wrapped.status_code == 201
        stats = {s["tag"]: s for s in client.get("/sensors/stats").json()}
        assert stats["fermenter_ph"]["count"] == 2 and stats["agitator_rpm"]["count"] == 1


def test_invalid_batch_is_rejected_whole_with_index_and_field(serve, backend_settings: Settings) -> None:
    batch = [
        {"timestamp": ts(0), "tag": "fermenter_temp", "value": 37.2},
        {"timestamp": ts(0), "tag": "fermenter_ph", "value": 12.0},
        {"timestamp": "yesterday", "tag": "agitator_rpm", "value": 450},
        {"timestamp": ts(0), "tag": "flux_capacitor", "value": 1.21},
    ]
    with serve(backend_settings) as client:
        response = client.post("/ingest/batch", json=batch)
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        locations = {tuple(d["loc"]) for d in error["details"]}
        assert locations == {(1, "value"), (2, "timestamp"), (3, "tag")}
        assert "1.value" in error["message"]
        assert client.get("/data").json() == []


def test_duplicate_reading_is_stored_once_and_reported(serve, backend_settings: Settings) -> None:
    reading = {"timestamp": ts(5), "tag": "fermenter_ph", "value": 7.1, "device_id": "fermenter-1"}
    with serve(backend_settings) as client:
        first = client.post("/ingest", json=reading)
        again = client.post("/ingest", json=reading)
        assert first.status_code == 201 and again.status_code == 200
        assert again.json() == {"status": "duplicate", "id": first.json()["id"], "is_anomaly": False}
        in_batch = client.post("/ingest/batch", json=[reading, {**reading, "timestamp": ts(6)}, {**reading, "timestamp": ts(6)}])
        assert [r["status"] for r in in_batch.json()["results"]] == ["duplicate", "success", "duplicate"]
        assert in_batch.json()["duplicates"] == 2
        assert len(client.get("/data", params={"device_id": "fermenter-1"}).json()) == 2


def test_seed_004_device_record_becomes_one_reading_per_metric(serve, backend_settings: Settings) -> None:
    record = {
        "device_id": "sensor-0042", "device_type": "environmental", "temperature": 22.5, "humidity": 45.0,
        "battery_level": 87.0, "energy_consumption": 1.8, "latitude": 40.7, "longitude": -74.0,
        "status": "active", "firmware_version": "2.1.0", "timestamp": ts(9) + "Z",
    }
    with serve(backend_settings) as client:
        response = client.post("/ingest", json=record)
        assert response.status_code == 201, response.text
        assert response.json()["accepted"] == 4
        stored = client.get("/data", params={"device_id": "sensor-0042"}).json()
        assert {r["tag"]: r["value"] for r in stored} == {
            "temperature": 22.5, "humidity": 45.0, "battery_level": 87.0, "energy_consumption": 1.8,
        }
        # The record reads back whole: every metric carries the record's device metadata.
        for reading in stored:
            assert {k: reading[k] for k in ("device_type", "latitude", "longitude", "status", "firmware_version")} == {
                "device_type": "environmental", "latitude": 40.7, "longitude": -74.0, "status": "active",
                "firmware_version": "2.1.0",
            }
        plain = client.post("/ingest", json={"timestamp": ts(9), "tag": "fermenter_temp", "value": 37.0})
        assert plain.status_code == 201
        (reading,) = client.get("/data", params={"tag": "fermenter_temp"}).json()
        assert reading["device_type"] is None and reading["firmware_version"] is None
        bad = client.post("/ingest", json={**record, "humidity": 140})
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["loc"] == ["humidity"]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"tag": "fermenter_temp", "value": 37.0}, ["timestamp"]),
        ({"timestamp": "2025-13-45T99:00:00", "tag": "fermenter_temp", "value": 37.0}, ["timestamp"]),
        ({"timestamp": 1700000000, "tag": "fermenter_temp", "value": 37.0}, ["timestamp"]),
        ({"timestamp": "2025-11-23T10:00:00", "tag": "unknown_tag", "value": 1.0}, ["tag"]),
        ({"timestamp": "2025-11-23T10:00:00", "tag": "fermenter_temp", "value": 29.9}, ["value"]),
        ({"timestamp": "2025-11-23T10:00:00", "tag": "fermenter_ph", "value": 9.01}, ["value"]),
        ({"timestamp": "2025-11-23T10:00:00", "tag": "agitator_rpm", "value": 150}, ["value"]),
        ({"timestamp": "2025-11-23T10:00:00", "tag": "temperature", "value": -51}, ["value"]),
        ({"timestamp": "2025-11-23T10:00:00", "tag": "battery_level", "value": 100.5}, ["value"]),
        ({"timestamp": "2025-11-23T10:00:00", "tag": "energy_consumption", "value": -0.1}, ["value"]),
        ({"timestamp": "2025-11-23T10:00:00", "tag": "fermenter_temp", "value": "37"}, ["value"]),
        ({"timestamp": "2025-11-23T10:00:00", "tag": "fermenter_temp", "value": True}, ["value"]),
        ({"timestamp": "2025-11-23T10:00:00", "tag": "fermenter_temp"}, ["value"]),
        ({"timestamp": "2025-11-23T10:00:00", "tag": "fermenter_temp", "value": 37.0, "device_id": "a b"}, ["device_id"]),
        ({"timestamp": "2025-11-23T10:00:00", "tag": "fermenter_temp", "value": 37.0, "device_id": "x" * 129}, ["device_id"]),
        ({"timestamp": "2999-01-01T00:00:00", "tag": "fermenter_temp", "value": 37.0}, ["timestamp"]),
        ({"timestamp": "1970-01-01T00:00:00", "tag": "fermenter_temp", "value": 37.0}, ["timestamp"]),
        ([1, 2], []),
    ],
)
def test_every_validation_rule_names_the_field(serve, settings_for, body, location) -> None:
    with serve(settings_for()) as client:
        response = client.post("/ingest", json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert error["details"][0]["loc"] == location
        assert client.get("/data").json() == []


def test_overflowing_number_is_rejected_as_not_finite(serve, settings_for) -> None:
    with serve(settings_for()) as client:
        raw = b'{"timestamp": "2025-11-23T10:00:00", "tag": "fermenter_temp", "value": 1e400}'
        response = client.post("/ingest", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 422
        assert response.json()["error"]["details"] == [
            {"loc": ["value"], "msg": "Input should be a finite number"}]


def test_nan_literal_and_bad_json_are_rejected(serve, settings_for) -> None:
    with serve(settings_for()) as client:
        for raw in (b'{"timestamp": "2025-11-23T10:00:00", "tag": "fermenter_temp", "value": NaN}', b"{not json"):
            response = client.post("/ingest", content=raw, headers={"Content-Type": "application/json"})
            assert response.status_code == 422
            assert response.json()["error"]["message"] == "body is not valid JSON"


def test_oversized_body_and_batch_are_refused(serve, settings_for) -> None:
    with serve(settings_for(max_body_bytes=4096, max_batch_readings=3)) as client:
        big = client.post("/ingest/batch", content=b"[" + b" " * 5000 + b"]",
                          headers={"Content-Type": "application/json"})
        assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
        many = client.post("/ingest/batch", json=[{"timestamp": ts(i), "tag": "fermenter_ph", "value": 7} for i in range(4)])
        assert many.status_code == 422 and "at most 3" in many.json()["error"]["message"]


def test_query_filters_and_limits(serve, backend_settings: Settings) -> None:
    with serve(backend_settings) as client:
        readings = [{"timestamp": ts(i), "tag": "fermenter_ph", "value": 7.0, "device_id": f"d{i % 2}"} for i in range(10)]
        assert client.post("/ingest/batch", json=readings).status_code == 201
        newest_first = client.get("/data", params={"tag": "fermenter_ph", "limit": 3}).json()
        assert [r["timestamp"][:19] for r in newest_first] == [ts(9), ts(8), ts(7)]
        window = client.get("/data", params={"since": ts(2), "until": ts(5)}).json()
        assert sorted(r["timestamp"][:19] for r in window) == [ts(2), ts(3), ts(4)]
        assert len(client.get("/data", params={"device_id": "d1"}).json()) == 5
        assert client.get("/data", params={"limit": 0}).status_code == 422
        assert client.get("/data", params={"since": ts(5), "until": ts(2)}).status_code == 422


def test_endpoints_require_a_token_except_health_and_docs(serve, settings_for) -> None:
    with serve(settings_for()) as client:
        client.headers.pop("Authorization")
        for path in ("/health", "/docs", "/openapi.json"):
            assert client.get(path).status_code == 200
        assert client.get("/ready").status_code == 200
        for method, path in (("POST", "/ingest"), ("POST", "/ingest/batch"), ("GET", "/data"),
                             ("GET", "/sensors/stats"), ("GET", "/sensors/anomalies/count")):
            response = client.request(method, path, json={})
            assert response.status_code == 401, path
            assert response.json()["error"]["code"] in {"missing_token", "invalid_token"}


def test_errors_share_one_format_with_request_id(serve, settings_for) -> None:
    with serve(settings_for()) as client:
        response = client.get("/nowhere", headers={"X-Request-ID": "trace-123"})
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "Not Found", "details": []},
                                   "request_id": "trace-123"}
        assert response.headers["x-request-id"] == "trace-123"


def test_simulator_client_is_rate_limited_per_its_configuration(serve, settings_for) -> None:
    with serve(settings_for(), credentials=SIMULATOR) as client:
        codes = [client.get("/sensors/stats").status_code for _ in range(25)]
        assert codes[:20] == [200] * 20 and 429 in codes[20:]
        refused = client.get("/sensors/stats")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "rate_limited"
