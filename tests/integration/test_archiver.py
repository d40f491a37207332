"""The archiver Lambda handler (lambda/archiver) on the AWS-documented MSK event shape, against moto's S3
(in process) and a local lake directory: object keys, Parquet schema and rows, idempotent retries,
dead letters, anomaly copies, metrics and logs, and failures that must make the event source retry.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from contracts.reading import encode_reading
from devstack.lambdas import LocalLambdaContext, load_handler_module
from devstack.processes import free_port

pytestmark = pytest.mark.timeout(60)

archiver = load_handler_module("archiver")
# Sibling modules of the handler, importable once the loader put lambda/archiver/ on sys.path.
lake_layout = importlib.import_module("lake_layout")
lake_writer = importlib.import_module("lake_writer")

BUCKET = "sensor-test-datalake"
REGION = "eu-west-1"
TOPIC = "sensor-readings"
EVENT_SOURCE_ARN = "arn:aws:kafka:eu-west-1:123456789012:cluster/sensors/751d2973-a626-431c-9d4e-d7975eb44dd7-2"
HOUR_11 = datetime(2024, 5, 1, 11, 0, tzinfo=UTC)
HOUR_12 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


# --- the event, as AWS documents it ----------------------------------------------------------------


def reading_row(reading_id: int, ts: datetime, *, is_anomaly: bool = False) -> dict[str, Any]:
    return {
        "id": reading_id,
        "device_id": f"device-{reading_id % 3}",
        "tag": "temperature" if reading_id % 2 else "humidity",
        "ts": ts,
        "value": 20.0 + reading_id / 8,
        "is_anomaly": is_anomaly,
        "z_score": None if reading_id % 5 == 0 else round(reading_id / 7, 4),
    }


def kafka_record(partition: int, offset: int, value: bytes | str, *, key: bytes = b"device-1") -> dict[str, Any]:
    """One record of the documented event: base64 key and value, millisecond timestamp, headers as byte lists."""
    return {
        "topic": TOPIC,
        "partition": partition,
        "offset": offset,
        "timestamp": int(time.time() * 1000) - 5_000,
        "timestampType": "CREATE_TIME",
        "key": base64.b64encode(key).decode(),
        "value": value if isinstance(value, str) else base64.b64encode(value).decode(),
        "headers": [{"source": [111, 117, 116, 98, 111, 120]}],
    }


def msk_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(f"{record['topic']}-{record['partition']}", []).append(record)
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": EVENT_SOURCE_ARN,
        "bootstrapServers": "b-1.sensors.abc123.c2.kafka.eu-west-1.amazonaws.com:9098,"
        "b-2.sensors.abc123.c2.kafka.eu-west-1.amazonaws.com:9098",
        "records": grouped,
    }


def two_partitions_two_hours() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Partition 0: offsets 100-105 (ids 1-6), partition 1: offsets 40-43 (ids 7-10); each spans 11:xx and 12:xx.

    Anomalies: ids 3 (p0, 11:xx) and 9 (p1, 12:xx).
    """
    rows = [
        reading_row(1, HOUR_11 + timedelta(minutes=50)),
        reading_row(2, HOUR_11 + timedelta(minutes=59, seconds=59, microseconds=999_999)),
        reading_row(3, HOUR_11 + timedelta(minutes=55), is_anomaly=True),
        reading_row(4, HOUR_12),
        reading_row(5, HOUR_12 + timedelta(minutes=1)),
        reading_row(6, HOUR_12 + timedelta(minutes=2)),
        reading_row(7, HOUR_11 + timedelta(minutes=58)),
        reading_row(8, HOUR_12 + timedelta(seconds=30)),
        reading_row(9, HOUR_12 + timedelta(minutes=5), is_anomaly=True),
        reading_row(10, HOUR_12 + timedelta(minutes=7)),
    ]
    coordinates = [(0, 100), (0, 101), (0, 102), (0, 103), (0, 104), (0, 105), (1, 40), (1, 41), (1, 42), (1, 43)]
    records = [
        kafka_record(partition, offset, encode_reading(row)[1], key=encode_reading(row)[0])
        for row, (partition, offset) in zip(rows, coordinates, strict=True)
    ]
    return msk_event(records), rows


EXPECTED_RAW_KEYS = {
    "raw/year=2024/month=05/day=01/hour=11/sensor-readings-0-100-102.parquet",
    "raw/year=2024/month=05/day=01/hour=12/sensor-readings-0-103-105.parquet",
    "raw/year=2024/month=05/day=01/hour=11/sensor-readings-1-40-40.parquet",
    "raw/year=2024/month=05/day=01/hour=12/sensor-readings-1-41-43.parquet",
}
EXPECTED_ANOMALY_KEYS = {
    "processed/anomalies/year=2024/month=05/day=01/hour=11/sensor-readings-0-100-102.parquet",
    "processed/anomalies/year=2024/month=05/day=01/hour=12/sensor-readings-1-41-43.parquet",
}


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for variable, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "DATA_LAKE_BUCKET": BUCKET,
    }.items():
        monkeypatch.setenv(variable, value)
    for variable in ("LAKE_DIR", "S3_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    lake_writer.forget_lake_writers()  # a cached client may belong to another test's moto
    yield
    lake_writer.forget_lake_writers()


@pytest.fixture
def s3(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield client


@pytest.fixture(autouse=True)
def archiver_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """The handler's Powertools log lines (its log handler was bound to stdout at import), kept out of
    `pytest -s` output like its EMF metric lines (see `invoke`) and botocore's credential notices."""
    caplog.set_level(logging.WARNING, logger="botocore.credentials")
    stream = io.StringIO()
    handler = archiver.logger.registered_handler
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


def invoke(event: dict[str, Any], metrics_output: io.StringIO | None = None) -> dict[str, Any]:
    """Call the handler like the Lambda runtime; its EMF lines (printed to stdout) go to `metrics_output`."""
    with contextlib.redirect_stdout(metrics_output or io.StringIO()):
        return archiver.handler(event, LocalLambdaContext(function_name="archiver-test"))


def object_keys(s3: Any, prefix: str = "") -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def read_parquet(s3: Any, key: str) -> pa.Table:
    return pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))


# --- keys, schema, rows ----------------------------------------------------------------------------


def test_batch_is_split_by_topic_partition_and_hour_with_offset_names(s3: Any) -> None:
    event, rows = two_partitions_two_hours()

    summary = invoke(event)

    assert object_keys(s3, "raw/") == EXPECTED_RAW_KEYS
    assert summary["written"] == len(rows)
    assert (summary["dead_lettered"], summary["anomalies"], summary["dead_letters"]) == (0, 2, [])
    assert set(summary["objects"]) == EXPECTED_RAW_KEYS | EXPECTED_ANOMALY_KEYS
    assert object_keys(s3) == EXPECTED_RAW_KEYS | EXPECTED_ANOMALY_KEYS


def test_parquet_objects_have_the_stable_schema_and_the_readings(s3: Any) -> None:
    event, rows = two_partitions_two_hours()
    invoke(event)

    tables = {key: read_parquet(s3, key) for key in EXPECTED_RAW_KEYS}

    expected_schema = pa.schema([
        pa.field("id", pa.int64(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("is_anomaly", pa.bool_(), nullable=False),
        pa.field("z_score", pa.float64(), nullable=True),
        pa.field("device_type", pa.string(), nullable=True),
        pa.field("latitude", pa.float64(), nullable=True),
        pa.field("longitude", pa.float64(), nullable=True),
        pa.field("status", pa.string(), nullable=True),
        pa.field("firmware_version", pa.string(), nullable=True),
        pa.field("kafka_topic", pa.string(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
    ])
    for key, table in tables.items():
        assert table.schema.equals(expected_schema), key
        assert table.schema.metadata[b"sensor_platform.lake_schema_version"] == b"1"
    row_counts = {key.rsplit("/", 2)[-2] + "/" + key.rsplit("/", 1)[-1]: table.num_rows for key, table in tables.items()}
    assert row_counts == {
        "hour=11/sensor-readings-0-100-102.parquet": 3,
        "hour=12/sensor-readings-0-103-105.parquet": 3,
        "hour=11/sensor-readings-1-40-40.parquet": 1,
        "hour=12/sensor-readings-1-41-43.parquet": 3,
    }

    archived = {row["id"]: row for table in tables.values() for row in table.to_pylist()}
    offsets = {1: 100, 2: 101, 3: 102, 4: 103, 5: 104, 6: 105, 7: 40, 8: 41, 9: 42, 10: 43}
    assert sorted(archived) == [row["id"] for row in rows]
    for row in rows:
        assert archived[row["id"]] == {
            "id": row["id"],
            "device_id": row["device_id"],
            "tag": row["tag"],
            "timestamp": row["ts"],
            "value": row["value"],
            "is_anomaly": row["is_anomaly"],
            "z_score": row["z_score"],
            # Plain readings: no seed-004 device metadata.
            "device_type": None, "latitude": None, "longitude": None, "status": None, "firmware_version": None,
            "kafka_topic": TOPIC,
            "kafka_partition": 0 if row["id"] <= 6 else 1,
            "kafka_offset": offsets[row["id"]],
        }
    # Rows inside an object are in offset order.
    first = tables["raw/year=2024/month=05/day=01/hour=12/sensor-readings-0-103-105.parquet"]
    assert first.column("kafka_offset").to_pylist() == [103, 104, 105]


def test_anomalies_are_copied_under_processed_with_the_same_names(s3: Any) -> None:
    event, _rows = two_partitions_two_hours()
    invoke(event)

    assert object_keys(s3, "processed/anomalies/") == EXPECTED_ANOMALY_KEYS
    copied = {key: read_parquet(s3, key).to_pylist() for key in EXPECTED_ANOMALY_KEYS}
    assert {key: [row["id"] for row in table] for key, table in copied.items()} == {
        "processed/anomalies/year=2024/month=05/day=01/hour=11/sensor-readings-0-100-102.parquet": [3],
        "processed/anomalies/year=2024/month=05/day=01/hour=12/sensor-readings-1-41-43.parquet": [9],
    }
    assert all(row["is_anomaly"] for rows in copied.values() for row in rows)


def test_the_same_batch_twice_overwrites_instead_of_duplicating(s3: Any) -> None:
    event, rows = two_partitions_two_hours()

    first = invoke(event)
    keys_after_first = object_keys(s3)
    second = invoke(json.loads(json.dumps(event)))

    assert first == second
    assert object_keys(s3) == keys_after_first
    ids = [reading_id for key in object_keys(s3, "raw/") for reading_id in read_parquet(s3, key).column("id").to_pylist()]
    assert Counter(ids) == Counter(row["id"] for row in rows)


# --- malformed records -----------------------------------------------------------------------------


def payload(**changes: Any) -> bytes:
    document = json.loads(encode_reading(reading_row(50, HOUR_12))[1])
    document.update(changes)
    return json.dumps(document).encode()


def without(field: str) -> bytes:
    document = json.loads(payload())
    del document[field]
    return json.dumps(document).encode()


MALFORMED = {
    # offset: (the record value as the event carries it, the field named, a phrase of the reason)
    201: ("not*base64!", "value", "not base64"),
    202: (base64.b64encode(b"{not json").decode(), "payload", "not UTF-8 JSON"),
    203: (base64.b64encode(without("tag")).decode(), "tag", "missing"),
    204: (base64.b64encode(payload(value=math.nan)).decode(), "value", "finite"),
    205: (base64.b64encode(payload(schema_version=2)).decode(), "schema_version", "unsupported 2"),
}


def test_malformed_records_are_dead_lettered_and_the_rest_archived(s3: Any) -> None:
    valid = [
        kafka_record(3, 200, encode_reading(reading_row(60, HOUR_12))[1]),
        kafka_record(3, 206, encode_reading(reading_row(61, HOUR_12 + timedelta(minutes=1)))[1]),
    ]
    malformed = [kafka_record(3, offset, value) for offset, (value, _field, _reason) in MALFORMED.items()]
    tombstone = kafka_record(3, 207, b"")
    del tombstone["value"]
    event = msk_event([valid[0], *malformed, valid[1], tombstone])

    summary = invoke(event)

    assert (summary["written"], summary["dead_lettered"]) == (2, 6)
    assert object_keys(s3, "raw/") == {"raw/year=2024/month=05/day=01/hour=12/sensor-readings-3-200-206.parquet"}
    assert read_parquet(s3, next(iter(object_keys(s3, "raw/")))).column("id").to_pylist() == [60, 61]
    expected_letters = {f"dead-letter/archiver/sensor-readings-3-{offset}.json" for offset in [*MALFORMED, 207]}
    assert object_keys(s3, "dead-letter/") == expected_letters
    assert set(summary["dead_letters"]) == expected_letters

    for offset, (value, field, reason) in MALFORMED.items():
        letter = json.loads(s3.get_object(Bucket=BUCKET, Key=f"dead-letter/archiver/sensor-readings-3-{offset}.json")["Body"].read())
        assert (letter["topic"], letter["partition"], letter["offset"]) == (TOPIC, 3, offset)
        assert letter["field"] == field
        assert reason in letter["reason"]
        assert letter["value_base64"] == value
        assert letter["key_base64"] == base64.b64encode(b"device-1").decode()
        assert letter["event_source_arn"] == EVENT_SOURCE_ARN
    tombstone_letter = json.loads(
        s3.get_object(Bucket=BUCKET, Key="dead-letter/archiver/sensor-readings-3-207.json")["Body"].read()
    )
    assert (tombstone_letter["field"], tombstone_letter["value_base64"]) == ("value", None)


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_an_event_without_records_is_an_error_not_a_dead_letter(s3: Any) -> None:
    with pytest.raises(ValueError, match="not an MSK event"):
        invoke({"eventSource": "aws:kafka", "records": None})
    with pytest.raises(ValueError, match="integer partition/offset"):
        invoke(msk_event([{**kafka_record(0, 1, payload()), "offset": "1"}]))
    assert object_keys(s3) == set()


# --- local directory target ------------------------------------------------------------------------


def test_local_directory_writer_produces_the_same_keys_and_rows(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    event, _rows = two_partitions_two_hours()
    invoke(event)
    s3_objects = {key: read_parquet(s3, key) for key in object_keys(s3)}

    lake_dir = tmp_path / "datalake"
    monkeypatch.setenv("LAKE_DIR", str(lake_dir))
    summary = invoke(event)
    invoke(event)  # a retry replaces the files in place

    files = {path.relative_to(lake_dir).as_posix(): path for path in lake_dir.rglob("*") if path.is_file()}
    assert set(files) == set(s3_objects) == set(summary["objects"])
    for key, path in files.items():
        assert pq.read_table(path).equals(s3_objects[key]), key


def test_local_directory_writer_refuses_keys_outside_its_root(tmp_path: Path) -> None:
    writer = lake_writer.LocalDirectoryLakeWriter(tmp_path / "lake")
    with pytest.raises(ValueError, match="escapes"):
        writer.put("../outside.json", b"{}", "application/json")
    assert not (tmp_path / "outside.json").exists()


# --- failures the event source must retry ----------------------------------------------------------


def test_missing_bucket_raises_so_the_batch_is_retried(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_LAKE_BUCKET", "no-such-bucket")
    event, _rows = two_partitions_two_hours()

    with pytest.raises(ClientError, match="NoSuchBucket"):
        invoke(event)


def test_unreachable_s3_raises_within_seconds(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    event, _rows = two_partitions_two_hours()

    started = time.monotonic()
    with pytest.raises(EndpointConnectionError):
        invoke(event)
    assert time.monotonic() - started < 10


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_without_a_target_the_handler_refuses_to_run(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATA_LAKE_BUCKET")
    with pytest.raises(RuntimeError, match="DATA_LAKE_BUCKET"):
        invoke(two_partitions_two_hours()[0])


# --- observability ---------------------------------------------------------------------------------


def test_emits_the_declared_emf_metrics(s3: Any) -> None:
    event, rows = two_partitions_two_hours()
    event["records"]["sensor-readings-1"].append(kafka_record(1, 44, "bad base64 ~"))
    metrics_output = io.StringIO()

    invoke(event, metrics_output)

    documents = [json.loads(line) for line in metrics_output.getvalue().splitlines()]
    assert len(documents) == 1
    emf = documents[0]
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "SensorPlatform"
    assert emf["service"] == "archiver"
    assert {metric["Name"] for metric in directive["Metrics"]} == set(archiver.ARCHIVER_METRICS)
    assert emf["ArchivedRecords"] == [float(len(rows))]
    assert emf["ArchiveDeadLetters"] == [1.0]
    (lag,) = emf["ArchiveLagSeconds"]
    assert 4.0 <= lag < 60.0  # the records were stamped 5 s ago


def test_logs_are_structured_and_carry_the_partition(s3: Any, archiver_logs: io.StringIO) -> None:
    event, _rows = two_partitions_two_hours()

    invoke(event)

    lines = [json.loads(line) for line in archiver_logs.getvalue().splitlines()]
    writes = [line for line in lines if line["message"] == "wrote lake object"]
    assert len(writes) == len(EXPECTED_RAW_KEYS | EXPECTED_ANOMALY_KEYS)
    for line in writes:
        assert line["service"] == "archiver"
        assert line["function_name"] == "archiver-test"
        assert line["kafka_topic"] == TOPIC
        assert f"sensor-readings-{line['kafka_partition']}-" in line["key"]
    finished = [line for line in lines if line["message"] == "archived batch"]
    assert len(finished) == 1
    assert "kafka_topic" not in finished[0]  # correlation keys are removed after each partition


# --- throughput ------------------------------------------------------------------------------------


def test_one_large_invocation_throughput(s3: Any, archiver_logs: io.StringIO) -> None:
    """Records/s of one 10,000-record invocation (MSK's maximum batch size) into moto's S3 in process."""
    count = 10_000
    start = HOUR_11 + timedelta(minutes=30)
    records = []
    for n in range(count):
        key, value = encode_reading(reading_row(n + 1, start + timedelta(seconds=n * 0.5), is_anomaly=n % 20 == 0))
        records.append(kafka_record(n % 4, n // 4, value, key=key))
    event = msk_event(records)

    started = time.perf_counter()
    summary = invoke(event)
    seconds = time.perf_counter() - started

    assert summary["written"] == count
    assert len(object_keys(s3, "raw/")) == 4 * 2  # 4 partitions x hours 11 and 12
    print(f"\narchiver: one invocation of {count} records (moto S3 in process): "
          f"{seconds * 1000:.0f} ms, {count / seconds:,.0f} records/s")


# --- the local loader (devstack.lambdas) -------------------------------------------------------


@pytest.fixture
def lambda_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A scratch lambda/ directory; sys.path and the modules the loader adds are undone afterwards."""
    monkeypatch.setattr(sys, "path", [*sys.path])
    yield tmp_path / "lambda"
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write_function(root: Path, name: str, files: dict[str, str]) -> None:
    (root / name).mkdir(parents=True)
    for file_name, text in files.items():
        (root / name / file_name).write_text(text)


def test_loader_imports_a_handler_by_path_with_its_sibling_modules(lambda_root: Path) -> None:
    write_function(lambda_root, "echo", {
        "handler.py": "from echo_helper import shout\n\n\ndef handler(event, context):\n    return shout(event['text'])\n",
        "echo_helper.py": "def shout(text):\n    return text.upper()\n",
    })

    module = load_handler_module("echo", lambda_root=lambda_root)

    assert module.handler({"text": "hi"}, None) == "HI"
    assert module.__name__ == "lambda_echo_handler"
    assert load_handler_module("echo", lambda_root=lambda_root) is module  # loaded once per process


def test_loader_refuses_a_sibling_that_another_module_would_shadow(lambda_root: Path) -> None:
    write_function(lambda_root, "clash", {"handler.py": "import json\n", "json.py": "VALUE = 1\n"})

    with pytest.raises(ImportError, match="already imported module 'json'"):
        load_handler_module("clash", lambda_root=lambda_root)
    with pytest.raises(FileNotFoundError):
        load_handler_module("missing", lambda_root=lambda_root)
