"""GET /metrics: the app's current-interval metrics, readable locally without AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.observability import metrics as m


def test_metrics_show_ingested_readings_and_commit_latency(serve, settings_for) -> None:
    start = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)
    with serve(settings_for()) as client:
        for second in range(2):
            reading = {"timestamp": (start + timedelta(seconds=second)).isoformat(), "tag": "fermenter_temp", "value": 37.2}
            assert client.post("/ingest", json=reading).status_code == 201
        response = client.get("/metrics")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["namespace"] == "SensorPlatform"
    assert body["dimensions"] == {"Service": "ingest", "Environment": "local"}
    assert body["counters"][m.READINGS_INGESTED] >= 2
    latency = body["distributions"][m.COMMIT_LATENCY]
    assert latency["count"] >= 1 and {"sum", "min", "max", "p50", "p90", "p99"} <= set(latency)


def test_metrics_need_a_token(serve, settings_for) -> None:
    with serve(settings_for()) as client:
        client.headers.pop("Authorization")
        assert client.get("/metrics").status_code == 401


def test_metrics_shape_is_documented_in_openapi(serve, settings_for) -> None:
    with serve(settings_for()) as client:
        operation = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert "snapshot" in operation["description"] and "distributions" in operation["description"]
