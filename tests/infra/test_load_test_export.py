"""`python -m loadtests.locust.export_results`: a results folder lands in S3 (moto), changed files only, around a command."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from devstack.moto_s3 import MotoServer
from loadtests.locust import export_results
from loadtests.locust.export_results import Exporter
from tests.conftest import REPO_ROOT

BUCKET = "sensor-dev-loadtest-123456789012-eu-west-1"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield client


def keys(s3) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def write_run(root: Path) -> Path:
    run = root / "20261122T201000Z-benchmark_1000"
    run.mkdir(parents=True)
    (run / "stats_stats.csv").write_text("Type,Name,Request Count\nPOST,/api/v1/readings,1000\n")
    (run / "summary.json").write_text('{"failures": 0}')
    (run / "plots").mkdir()
    (run / "plots" / "latency.png").write_bytes(b"\x89PNG fake")
    return run


def test_uploads_the_folder_under_the_prefix_keeping_relative_paths(s3, tmp_path: Path, capsys) -> None:
    write_run(tmp_path)
    assert export_results.main(["--dir", str(tmp_path), "--bucket", BUCKET, "--prefix", "runs"]) == 0
    stored = keys(s3)
    assert set(stored) == {
        "runs/20261122T201000Z-benchmark_1000/stats_stats.csv",
        "runs/20261122T201000Z-benchmark_1000/summary.json",
        "runs/20261122T201000Z-benchmark_1000/plots/latency.png",
    }
    assert stored["runs/20261122T201000Z-benchmark_1000/summary.json"] == b'{"failures": 0}'
    assert "uploaded 3 file(s)" in capsys.readouterr().out


def test_only_new_or_changed_files_are_uploaded_again(s3, tmp_path: Path) -> None:
    run = write_run(tmp_path)
    exporter = Exporter(tmp_path, BUCKET, "runs/", s3)
    assert len(exporter.export()) == 3
    assert exporter.export() == []
    (run / "summary.json").write_text('{"failures": 2, "done": true}')
    (run / "report.html").write_text("<html></html>")
    assert exporter.export() == [f"runs/{run.name}/report.html", f"runs/{run.name}/summary.json"]
    assert keys(s3)[f"runs/{run.name}/summary.json"] == b'{"failures": 2, "done": true}'


def test_wraps_a_command_exports_what_it_wrote_and_keeps_its_exit_code(s3, tmp_path: Path) -> None:
    results = tmp_path / "results"  # created by the command, not before
    script = (
        "import pathlib, sys; d = pathlib.Path(sys.argv[1]) / 'run1'; d.mkdir(parents=True); "
        "(d / 'report.html').write_text('done'); sys.exit(3)"
    )
    code = export_results.main(["--dir", str(results), "--bucket", BUCKET, "--prefix", "runs/", "--watch", "30",
                                "--", sys.executable, "-c", script, str(results)])
    assert code == 3  # the task's exit code is Locust's
    assert keys(s3) == {"runs/run1/report.html": b"done"}


def test_watch_without_a_command_exports_until_stopped_then_once_more(s3, tmp_path: Path) -> None:
    run = write_run(tmp_path)
    exporter = Exporter(tmp_path, BUCKET, "", s3)
    stop = threading.Event()
    late = run / "late.csv"

    def finish() -> None:
        late.write_text("written after the last periodic export")
        stop.set()

    timer = threading.Timer(0.3, finish)
    timer.start()
    assert export_results.run(exporter, [], 0.05, stop) == 0
    timer.join()
    assert f"{run.name}/late.csv" in keys(s3)  # the final export after the stop


# Like Locust: the report is written only when interrupted (SIGINT); SIGTERM would kill it without one.
LOCUST_LIKE = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def interrupted(*_):
    (out / "report.html").write_text("written on SIGINT")
    sys.exit(0)
signal.signal(signal.SIGINT, interrupted)
out.mkdir(parents=True)
(out / "ready").write_text("")
while True:
    time.sleep(0.05)
"""


def test_sigterm_reaches_the_command_as_sigint_and_its_report_is_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ECS does when the master task stops; the exporter itself starts with SIGINT ignored, as a
    background job of a non-interactive shell would, and the command must still be interruptible."""
    server = MotoServer().start()
    try:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", "eu-west-1"), ("AWS_ENDPOINT_URL", server.endpoint_url)):
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        results = tmp_path / "results"
        exporter = subprocess.Popen(
            [sys.executable, "-m", "loadtests.locust.export_results", "--dir", str(results), "--bucket", BUCKET,
             "--prefix", "runs/", "--watch", "30", "--", sys.executable, "-c", LOCUST_LIKE, str(results / "run1")],
            cwd=REPO_ROOT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # noqa: PLW1509
        )
        deadline = time.monotonic() + 30
        while not (results / "run1" / "ready").exists():
            assert exporter.poll() is None and time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(timeout=30) == 0
        assert keys(s3) == {"runs/run1/ready": b"", "runs/run1/report.html": b"written on SIGINT"}
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bucket", "Bad_Bucket"], "is not an S3 bucket name"),
        (["--prefix", "/runs"], "must not start with '/'"),
        (["--watch", "0"], "--watch must be a positive number"),
        (["--dir", "/nonexistent/results"], "is not a directory"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    base = {"--dir": str(tmp_path), "--bucket": BUCKET}
    argv = [part for flag, value in base.items() if flag not in args for part in (flag, value)] + args
    with pytest.raises(SystemExit) as exit_:
        export_results.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
