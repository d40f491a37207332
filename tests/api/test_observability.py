"""Correlation ids, JSON logs, the body size limit, and the EMF metrics line."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.errors import install_error_handlers
from app.observability import metrics as m
from app.observability.context import current_request_id
from app.observability.logging import configure_logging
from app.observability.middleware import EdgeMiddleware
from app.settings import Settings
from tests.support.clock import ManualClock

LIMIT = 1024
HEX_ID = re.compile(r"[0-9a-f]{32}")
handler_log = logging.getLogger("tests.observability.handler")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def json_logging() -> Iterator[None]:
    """configure_logging for one test, then the logging setup as it was."""
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {
        name: (list(lg.handlers), lg.level, lg.propagate)
        for name in names
        for lg in [logging.getLogger(name)]
    }
    configure_logging("INFO")
    yield
    for name, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


def json_lines(captured: str) -> list[dict[str, Any]]:
    """Every stdout line must be one JSON object."""
    return [json.loads(line) for line in captured.splitlines() if line.strip()]


def build_app(max_body_bytes: int = LIMIT) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.handler_calls = 0

    @app.get("/whoami")
    async def whoami() -> dict[str, Any]:
        handler_log.info("inside request", extra={"sensor_id": "s-1"})
        return {"request_id": current_request_id()}

    @app.get("/whoami-sync")
    def whoami_sync() -> dict[str, Any]:
        return {"request_id": current_request_id()}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        app.state.handler_calls += 1
        body = await request.body()
        return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    @app.post("/parsed")
    async def parsed(payload: dict[str, Any]) -> dict[str, Any]:
        app.state.handler_calls += 1
        return {"keys": len(payload)}

    @app.post("/swallow")
    async def swallow(request: Request) -> JSONResponse:
        try:
            await request.body()
        except Exception:
            return JSONResponse({"swallowed": True}, status_code=400)
        return JSONResponse({"swallowed": False})

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    app.add_middleware(EdgeMiddleware, max_body_bytes=max_body_bytes)
    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def chunks(total: int, size: int = 100) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield b"x" * piece
        sent += piece


# --- request id -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_request_id_is_generated_and_echoed() -> None:
    async with client_for(build_app()) as client:
        responses = [await client.get("/whoami") for _ in range(50)]
    ids = [response.headers["x-request-id"] for response in responses]
    for request_id, response in zip(ids, responses, strict=True):
        assert HEX_ID.fullmatch(request_id)
        assert response.json() == {"request_id": request_id}
        # What uuid4().hex gives: the version and RFC 4122 variant bits set, the rest random.
        generated = uuid.UUID(hex=request_id)
        assert (generated.version, generated.variant) == (4, uuid.RFC_4122)
    assert len(set(ids)) == len(ids)


@pytest.mark.anyio
async def test_request_id_reaches_sync_endpoints_in_the_threadpool() -> None:
    async with client_for(build_app()) as client:
        response = await client.get("/whoami-sync", headers={"X-Request-ID": "sync-1"})
    assert response.json() == {"request_id": "sync-1"}


@pytest.mark.anyio
async def test_sane_request_id_is_echoed_and_in_log_lines(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    sane = "Client-42.retry_1"
    async with client_for(build_app()) as client:
        response = await client.get("/whoami", headers={"X-Request-ID": sane})
    assert response.headers["x-request-id"] == sane
    assert response.json() == {"request_id": sane}

    lines = json_lines(capsys.readouterr().out)
    (entry,) = [line for line in lines if line["message"] == "inside request"]
    assert entry["request_id"] == sane
    assert entry["sensor_id"] == "s-1"
    assert entry["level"] == "INFO"
    assert entry["logger"] == handler_log.name
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["timestamp"])


@pytest.mark.anyio
@pytest.mark.parametrize("insane", ["", "has space", "a" * 129, "semi;colon", "slash/path", b"caf\xe9"])
async def test_insane_request_id_is_replaced(insane: str | bytes) -> None:
    async with client_for(build_app()) as client:
        response = await client.get("/whoami", headers={"X-Request-ID": insane})
    request_id = response.headers["x-request-id"]
    assert HEX_ID.fullmatch(request_id)  # a fresh uuid4 hex, which none of the inputs is
    assert response.json() == {"request_id": request_id}


@pytest.mark.anyio
async def test_longest_sane_request_id_is_kept() -> None:
    longest = "A" * 128
    async with client_for(build_app()) as client:
        response = await client.get("/whoami", headers={"X-Request-ID": longest})
    assert response.headers["x-request-id"] == longest


async def call_asgi(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    """One GET driven directly through the ASGI interface, in the calling task."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": headers, "client": ("127.0.0.1", 1), "server": ("test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.anyio
async def test_request_id_does_not_leak_between_requests() -> None:
    app = build_app()
    assert current_request_id() is None

    first = await call_asgi(app, "/whoami", [(b"x-request-id", b"first")])
    assert current_request_id() is None
    second = await call_asgi(app, "/whoami", [])
    assert current_request_id() is None

    first_body = json.loads(first[1]["body"])
    second_body = json.loads(second[1]["body"])
    assert first_body == {"request_id": "first"}
    assert HEX_ID.fullmatch(second_body["request_id"])
    assert dict(second[0]["headers"])[b"x-request-id"] == second_body["request_id"].encode()


@pytest.mark.anyio
async def test_concurrent_requests_keep_their_own_ids() -> None:
    async with client_for(build_app()) as client:
        responses = await asyncio.gather(
            *(client.get("/whoami", headers={"X-Request-ID": f"req-{i}"}) for i in range(50))
        )
    assert [r.json()["request_id"] for r in responses] == [f"req-{i}" for i in range(50)]


@pytest.mark.anyio
async def test_unhandled_error_is_a_500_with_the_common_body_and_a_logged_request_id(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    async with client_for(build_app()) as client:
        response = await client.get("/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "boom-1"
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal server error", "details": []},
        "request_id": "boom-1",
    }
    (entry,) = [line for line in json_lines(capsys.readouterr().out) if line["level"] == "ERROR"]
    assert entry["request_id"] == "boom-1"
    assert "RuntimeError: kaput" in entry["exception"]


# --- body size limit ------------------------------------------------------------------------------


def assert_payload_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert response.json() == {
        "error": {
            "code": "payload_too_large",
            "message": f"request body exceeds the limit of {LIMIT} bytes",
            "details": [],
        },
        "request_id": response.headers["x-request-id"],
    }


@pytest.mark.anyio
async def test_declared_content_length_over_the_limit_is_rejected_before_the_handler() -> None:
    app = build_app()
    async with client_for(app) as client:
        response = await client.post("/echo", content=b"x" * (LIMIT + 1))
    assert_payload_too_large(response)
    assert app.state.handler_calls == 0


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/echo", "/parsed", "/swallow"])
async def test_chunked_body_over_the_limit_is_rejected_while_read(path: str) -> None:
    """Raw body reads, FastAPI's own body parsing (which would otherwise answer 400) and a handler that
    swallows the error all end in the 413."""
    async with client_for(build_app()) as client:
        response = await client.post(
            path, content=chunks(LIMIT * 5), headers={"content-type": "application/json"}
        )
    assert "content-length" not in response.request.headers
    assert_payload_too_large(response)


@pytest.mark.anyio
async def test_understated_content_length_does_not_get_past_the_limit() -> None:
    app = build_app()
    async with client_for(app) as client:
        response = await client.post(
            "/echo", content=chunks(LIMIT * 3), headers={"content-length": str(LIMIT)}
        )
    assert_payload_too_large(response)


@pytest.mark.anyio
@pytest.mark.parametrize("size", [0, 1, LIMIT - 1, LIMIT])
async def test_bodies_within_the_limit_reach_the_handler_intact(size: int) -> None:
    payload = random.Random(size).randbytes(size)
    expected = {"size": size, "sha256": hashlib.sha256(payload).hexdigest()}
    async with client_for(build_app()) as client:
        declared = await client.post("/echo", content=payload)

        async def streamed() -> AsyncIterator[bytes]:
            for start in range(0, size, 100):
                yield payload[start : start + 100]

        chunked = await client.post("/echo", content=streamed())
    assert declared.status_code == chunked.status_code == 200
    assert declared.json() == chunked.json() == expected


@pytest.mark.anyio
async def test_non_http_scopes_pass_through_untouched() -> None:
    seen: list[tuple[dict[str, Any], Any, Any]] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        return None

    for scope_type in ("lifespan", "websocket"):
        scope = {"type": scope_type, "headers": [(b"content-length", b"999999")]}
        await EdgeMiddleware(inner, max_body_bytes=10)(scope, receive, send)
        assert seen[-1] == (scope, receive, send)


# --- logging --------------------------------------------------------------------------------------


def test_configure_logging_is_idempotent_and_routes_uvicorn(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    configure_logging("INFO")
    ours = [h for h in logging.getLogger().handlers if type(h).__name__ == "_StdoutJsonHandler"]
    assert len(ours) == 1

    logging.getLogger("uvicorn.error").info("Application startup complete.")
    lines = json_lines(capsys.readouterr().out)
    assert lines == [
        {
            "timestamp": lines[0]["timestamp"],
            "level": "INFO",
            "logger": "uvicorn.error",
            "message": "Application startup complete.",
        }
    ]


def test_uvicorn_setup_is_rerouted_but_a_disabled_access_log_stays_off(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """What uvicorn leaves behind before importing the app: a plain-text handler on `uvicorn`, and with
    --no-access-log an `uvicorn.access` logger without handlers or propagation."""
    plain_text = logging.StreamHandler()
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.handlers[:] = [plain_text]
    uvicorn_logger.propagate = False
    access_logger = logging.getLogger("uvicorn.access")
    access_logger.handlers[:] = []
    access_logger.propagate = False

    configure_logging("INFO")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 7, extra={"color_message": "\x1b[36m"})
    access_logger.info('127.0.0.1:1 - "POST /readings HTTP/1.1" 202')

    assert plain_text not in uvicorn_logger.handlers
    (line,) = json_lines(capsys.readouterr().out)
    assert line["message"] == "Started server process [7]"
    assert "color_message" not in line


def test_log_lines_are_json_with_exception_and_extras(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    log = logging.getLogger("tests.observability")
    try:
        raise ValueError("bad reading")
    except ValueError:
        log.exception("commit failed for %s", "batch-7", extra={"rows": 12, "path": object()})
    log.debug("below the level")
    log.warning('multi\nline "quoted"', extra={"level": "not allowed to override"})

    first, second = json_lines(capsys.readouterr().out)
    assert first["message"] == "commit failed for batch-7"
    assert first["level"] == "ERROR"
    assert first["rows"] == 12
    assert first["path"].startswith("<object object")
    assert "ValueError: bad reading" in first["exception"]
    assert "request_id" not in first
    assert second["message"] == 'multi\nline "quoted"'
    assert second["level"] == "WARNING"


# --- metrics --------------------------------------------------------------------------------------


def new_metrics(**kwargs: Any) -> tuple[m.Metrics, list[str]]:
    lines: list[str] = []
    kwargs.setdefault("clock", ManualClock(1_700_000_000.0))
    metrics = m.Metrics("SensorPlatform", m.dimensions_for("test"), sink=lines.append, **kwargs)
    return metrics, lines


def assert_valid_emf(line: str) -> dict[str, Any]:
    """The EMF specification's structure, and agreement with the registry."""
    document = json.loads(line)
    metadata = document["_aws"]
    assert isinstance(metadata["Timestamp"], int)
    (directive,) = metadata["CloudWatchMetrics"]
    assert directive["Namespace"] == "SensorPlatform"
    for dimension_set in directive["Dimensions"]:
        assert 1 <= len(dimension_set) <= 30
        for key in dimension_set:
            assert isinstance(document[key], str)
    names = [metric["Name"] for metric in directive["Metrics"]]
    assert len(names) == len(set(names)) <= 100
    for metric in directive["Metrics"]:
        assert set(metric) == {"Name", "Unit"}
        assert metric["Unit"] == m.REGISTRY[metric["Name"]].unit
        value = document[metric["Name"]]
        values = value if isinstance(value, list) else [value]
        assert 1 <= len(values) <= 100
        assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    return document


def directive_names(document: dict[str, Any]) -> set[str]:
    return {metric["Name"] for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def test_registry_declares_every_required_metric_with_its_unit_and_kind() -> None:
    expected = {
        m.READINGS_INGESTED: ("Count", "counter"), m.ANOMALIES_DETECTED: ("Count", "counter"),
        m.VALIDATION_REJECTS: ("Count", "counter"), m.DUPLICATES: ("Count", "counter"),
        m.DEAD_LETTERED: ("Count", "counter"), m.DEAD_LETTERS_REPLAYED: ("Count", "counter"),
        m.DEAD_LETTER_BACKLOG: ("Count", "gauge"), m.OUTBOX_PENDING: ("Count", "gauge"),
        m.OUTBOX_OLDEST_AGE: ("Seconds", "gauge"), m.COMMIT_LATENCY: ("Milliseconds", "distribution"),
        m.COMMIT_BATCH_SIZE: ("Count", "distribution"), m.COMMIT_WAIT: ("Milliseconds", "distribution"),
        m.EVENT_LOOP_LAG: ("Milliseconds", "distribution"), m.RELAY_PUBLISHED: ("Count", "counter"),
        m.RELAY_FAILURES: ("Count", "counter"), m.DB_CIRCUIT_OPEN: ("Count", "gauge"),
        m.STATE_STORE_FALLBACKS: ("Count", "counter"), m.STATE_STORE_UNAVAILABLE: ("Count", "gauge"),
        m.STATE_STORE_ROUND_TRIPS: ("Count", "counter"),
        m.DEAD_LETTER_OBJECTS: ("Count", "gauge"), m.DEAD_LETTER_OLDEST_AGE: ("Seconds", "gauge"),
        m.DEAD_LETTERS_WRITTEN: ("Count", "counter"),
    }
    assert {name: (d.unit, d.kind) for name, d in m.REGISTRY.items()} == expected
    assert all(d.name == name for name, d in m.REGISTRY.items())


def test_emf_line_is_valid_and_carries_every_value() -> None:
    clock = ManualClock(1_700_000_000.25)
    metrics, lines = new_metrics(clock=clock)
    metrics.increment(m.READINGS_INGESTED, 250)
    metrics.increment(m.ANOMALIES_DETECTED)
    metrics.gauge(m.OUTBOX_PENDING, 17)
    metrics.gauge(m.OUTBOX_OLDEST_AGE, 2.5)
    metrics.observe(m.COMMIT_LATENCY, 12.5)
    metrics.observe(m.COMMIT_LATENCY, 7.5)
    clock.now += 60

    returned = metrics.flush()
    (line,) = lines
    assert returned == line
    assert "\n" not in line
    document = assert_valid_emf(line)

    assert document["_aws"]["Timestamp"] == 1_700_000_000_250  # the interval's start
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service", "Environment"]]
    assert document["Service"] == "ingest"
    assert document["Environment"] == "test"
    assert document[m.READINGS_INGESTED] == 250
    assert document[m.ANOMALIES_DETECTED] == 1
    assert document[m.OUTBOX_PENDING] == 17
    assert document[m.OUTBOX_OLDEST_AGE] == 2.5
    assert sorted(document[m.COMMIT_LATENCY]) == [7.5, 12.5]
    assert document["Distributions"] == {m.COMMIT_LATENCY: {"count": 2, "sum": 20.0, "min": 7.5, "max": 12.5}}


def test_untouched_counters_emit_zero_while_unset_gauges_and_empty_distributions_are_left_out() -> None:
    metrics, _ = new_metrics()
    document = assert_valid_emf(metrics.flush())
    counters = {d.name for d in m.REGISTRY.values() if d.kind is m.Kind.COUNTER}
    assert directive_names(document) == counters
    assert all(document[name] == 0 for name in counters)
    assert "Distributions" not in document


def test_counters_and_distributions_reset_after_flush_while_gauges_persist() -> None:
    metrics, _ = new_metrics()
    metrics.increment(m.RELAY_PUBLISHED, 5)
    metrics.gauge(m.DB_CIRCUIT_OPEN, 1)
    metrics.gauge(m.DB_CIRCUIT_OPEN, 0)  # last value wins
    metrics.observe(m.COMMIT_BATCH_SIZE, 500)
    first = assert_valid_emf(metrics.flush())
    second = assert_valid_emf(metrics.flush())

    assert first[m.RELAY_PUBLISHED] == 5
    assert second[m.RELAY_PUBLISHED] == 0
    assert first[m.DB_CIRCUIT_OPEN] == second[m.DB_CIRCUIT_OPEN] == 0
    assert first[m.COMMIT_BATCH_SIZE] == [500]
    assert m.COMMIT_BATCH_SIZE not in second
    assert metrics.snapshot()["gauges"] == {m.DB_CIRCUIT_OPEN: 0}
    assert metrics.snapshot()["counters"][m.RELAY_PUBLISHED] == 0


def test_distribution_keeps_at_most_100_values_but_exact_statistics() -> None:
    metrics, _ = new_metrics(rng=random.Random(7))
    observed = [float(i % 997) + 0.5 for i in range(10_000)]
    for value in observed:
        metrics.observe(m.COMMIT_LATENCY, value)

    snapshot = metrics.snapshot()["distributions"][m.COMMIT_LATENCY]
    assert snapshot["count"] == 10_000
    assert snapshot["sum"] == sum(observed)
    assert (snapshot["min"], snapshot["max"]) == (0.5, 996.5)
    assert snapshot["min"] <= snapshot["p50"] <= snapshot["p90"] <= snapshot["p99"] <= snapshot["max"]

    document = assert_valid_emf(metrics.flush())
    emitted = document[m.COMMIT_LATENCY]
    assert len(emitted) == 100
    assert min(emitted) == 0.5  # exact extremes, so CloudWatch's Minimum/Maximum are right
    assert max(emitted) == 996.5
    assert set(emitted) <= set(observed)
    assert document["Distributions"][m.COMMIT_LATENCY] == {
        "count": 10_000, "sum": sum(observed), "min": 0.5, "max": 996.5
    }


def test_reservoir_sample_is_roughly_uniform() -> None:
    """Late observations are as likely to be kept as early ones (a biased sample skews percentiles)."""
    metrics, _ = new_metrics(rng=random.Random(11))
    kept_from_second_half = 0
    for _ in range(20):
        for value in range(2000):
            metrics.observe(m.COMMIT_BATCH_SIZE, value)
        emitted = json.loads(metrics.flush())[m.COMMIT_BATCH_SIZE]
        kept_from_second_half += sum(1 for v in emitted if v >= 1000)
    assert 800 < kept_from_second_half < 1200  # of 2000 kept values, about half


def test_misused_metric_names_and_values_raise() -> None:
    metrics, _ = new_metrics()
    with pytest.raises(m.UnknownMetricError, match="NotAMetric"):
        metrics.increment("NotAMetric")
    with pytest.raises(m.UnknownMetricError):
        metrics.gauge("NotAMetric", 1)
    with pytest.raises(m.UnknownMetricError):
        metrics.observe("NotAMetric", 1)
    with pytest.raises(TypeError, match="gauge"):
        metrics.increment(m.OUTBOX_PENDING)
    with pytest.raises(TypeError, match="counter"):
        metrics.observe(m.READINGS_INGESTED, 1)
    with pytest.raises(ValueError, match="finite"):
        metrics.observe(m.COMMIT_LATENCY, float("nan"))
    with pytest.raises(ValueError, match="finite"):
        metrics.gauge(m.OUTBOX_OLDEST_AGE, float("inf"))
    with pytest.raises(ValueError, match="non-negative"):
        metrics.increment(m.READINGS_INGESTED, -1)
    assert_valid_emf(metrics.flush())  # nothing half-recorded


def test_increments_from_many_threads_add_up_exactly() -> None:
    metrics, _ = new_metrics()
    threads_count, per_thread = 8, 20_000

    def work() -> None:
        for _ in range(per_thread):
            metrics.increment(m.READINGS_INGESTED)
            metrics.observe(m.COMMIT_LATENCY, 1.0)

    threads = [threading.Thread(target=work) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    document = json.loads(metrics.flush())
    assert document[m.READINGS_INGESTED] == threads_count * per_thread
    assert document["Distributions"][m.COMMIT_LATENCY]["count"] == threads_count * per_thread


@pytest.mark.anyio
async def test_increments_from_many_tasks_add_up_exactly() -> None:
    metrics, _ = new_metrics()

    async def work() -> None:
        for _ in range(100):
            metrics.increment(m.DUPLICATES, 2)
            await asyncio.sleep(0)

    await asyncio.gather(*(work() for _ in range(1000)))
    assert json.loads(metrics.flush())[m.DUPLICATES] == 200_000


def test_full_emf_line_stays_under_the_docker_log_line_limit() -> None:
    """Docker splits stdout lines over 16 KiB, and a split EMF line is no longer one JSON object."""
    metrics, _ = new_metrics(rng=random.Random(3))
    for index, metric in enumerate(m.REGISTRY.values()):
        for _ in range(500 if metric.kind is m.Kind.DISTRIBUTION else 1):
            value = 1e6 / 7 + random.random()
            if metric.kind is m.Kind.COUNTER:
                metrics.increment(metric.name, value)
            elif metric.kind is m.Kind.GAUGE:
                metrics.gauge(metric.name, value + index)
            else:
                metrics.observe(metric.name, value)
    line = metrics.flush()
    assert directive_names(assert_valid_emf(line)) == set(m.REGISTRY)
    assert len(line.encode()) < 16 * 1024


def test_from_settings_uses_namespace_and_environment() -> None:
    settings = Settings()
    metrics = m.Metrics.from_settings(settings, sink=lambda _: None)
    assert metrics.namespace == settings.metrics_namespace == "SensorPlatform"
    assert metrics.dimensions == {"Service": "ingest", "Environment": settings.app_env}


def test_default_sink_prints_one_line_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = m.Metrics("SensorPlatform", m.dimensions_for("test"))
    metrics.increment(m.RELAY_FAILURES)
    metrics.flush()
    (line,) = capsys.readouterr().out.splitlines()
    assert assert_valid_emf(line)[m.RELAY_FAILURES] == 1


@pytest.mark.anyio
async def test_flusher_flushes_periodically_and_once_more_when_cancelled() -> None:
    lines: list[str] = []
    metrics = m.Metrics("SensorPlatform", m.dimensions_for("test"), sink=lines.append)
    metrics.increment(m.READINGS_INGESTED, 3)
    task = asyncio.create_task(metrics.run_flusher(0.02))
    await asyncio.sleep(0.11)
    metrics.increment(m.READINGS_INGESTED, 4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert len(lines) >= 3
    documents = [assert_valid_emf(line) for line in lines]
    assert sum(d[m.READINGS_INGESTED] for d in documents) == 7
    assert documents[-1][m.READINGS_INGESTED] == 4  # the final flush caught the last increments


@pytest.mark.anyio
async def test_flusher_stops_on_request_with_a_final_flush() -> None:
    metrics, lines = new_metrics(clock=ManualClock(0.0))
    task = asyncio.create_task(metrics.run_flusher(3600))
    await asyncio.sleep(0)
    metrics.gauge(m.DEAD_LETTER_BACKLOG, 9)
    metrics.stop()
    await asyncio.wait_for(task, timeout=1)
    (line,) = lines
    assert assert_valid_emf(line)[m.DEAD_LETTER_BACKLOG] == 9


@pytest.mark.anyio
async def test_flusher_survives_a_failing_sink(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = 0

    def broken_sink(_: str) -> None:
        nonlocal calls
        calls += 1
        raise OSError("stdout closed")

    metrics = m.Metrics("SensorPlatform", m.dimensions_for("test"), sink=broken_sink)
    task = asyncio.create_task(metrics.run_flusher(0.01))
    await asyncio.sleep(0.05)
    metrics.stop()
    await asyncio.wait_for(task, timeout=1)
    assert calls >= 2
    errors = [line for line in json_lines(capsys.readouterr().out) if line["level"] == "ERROR"]
    assert errors
    assert errors[0]["message"] == "metrics flush failed"
