"""The hot routes' pre-encoded JSON is byte for byte what their response models would have produced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from fastapi import Response
from pydantic import TypeAdapter

from app.api.rendering import json_response
from app.api.schemas import AnomalyCountOut, BatchResultOut, ReadingOut, TagStatsOut

MOMENT = datetime(2025, 11, 23, 10, 30, 45, 123456, tzinfo=UTC)


def _model_json(annotation, content) -> bytes:
    adapter = TypeAdapter(annotation)
    return adapter.dump_json(adapter.validate_python(content))


# The readers return every metadata column (null for plain readings).
NO_METADATA = dict.fromkeys(("device_type", "latitude", "longitude", "status", "firmware_version"))


def test_readings_match_the_response_model():
    rows = [
        {"id": 1, "device_id": "dev-1", "tag": "t", "timestamp": MOMENT, "value": 37.2, "is_anomaly": False,
         "z_score": None, **NO_METADATA},
        {"id": 2, "device_id": "dév-ü", "tag": "t\"q", "timestamp": MOMENT.replace(microsecond=0),
         "value": 1e-05, "is_anomaly": True, "z_score": -3.25, **NO_METADATA},
        {"id": 3, "device_id": "d", "tag": "t", "timestamp": MOMENT.astimezone(timezone(timedelta(hours=2))),
         "value": 1e300, "is_anomaly": False, "z_score": 0.0, **NO_METADATA},
        {"id": 4, "device_id": "d", "tag": "t", "timestamp": MOMENT.replace(tzinfo=None), "value": 0.1,
         "is_anomaly": False, "z_score": float("nan"), "device_type": "env", "latitude": 40.7,
         "longitude": -74.0, "status": "active", "firmware_version": "2.1.0"},
    ]
    assert json_response(rows).body == _model_json(list[ReadingOut], rows)


def test_stats_counts_and_batches_match_their_response_models():
    stats = [{"tag": "t", "count": 3, "devices": 2, "min": -1.5, "max": 2.0, "mean": 0.25, "anomalies": 0,
              "first_timestamp": MOMENT, "last_timestamp": MOMENT}]
    counts = {"total": 3, "by_tag": {"a": 1, "b": 2}}
    batch = {"status": "success", "accepted": 1, "duplicates": 1,
             "results": [{"status": "success", "id": 5, "is_anomaly": True},
                         {"status": "duplicate", "id": None, "is_anomaly": False}]}
    assert json_response(stats).body == _model_json(list[TagStatsOut], stats)
    assert json_response(counts).body == _model_json(AnomalyCountOut, counts)
    assert json_response(batch).body == _model_json(BatchResultOut, batch)


def test_status_and_the_dependencies_headers_are_kept():
    sub_response = Response()
    sub_response.headers["X-RateLimit-Remaining"] = "7"
    response = json_response({"total": 0, "by_tag": {}}, 201, sub_response)
    assert response.status_code == 201
    assert response.headers["x-ratelimit-remaining"] == "7"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.body))
