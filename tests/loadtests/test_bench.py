"""make bench (loadtests/bench/throughput.py): the ceiling app's contract over real HTTP, flag validation, the rows
it appends to docs/benchmarks.md, and a tiny bench (20 users, 3 s hold) against the real processes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from devstack.processes import stop
from loadtests.bench.accounting import Timing
from loadtests.bench.benchmarks_doc import (
    COLUMNS,
    CPU_SECTION,
    SECTION,
    SEED_ROW,
    append_rows,
    cpu_rows,
    read_rows,
    result_rows,
)
from loadtests.bench.results import Accounting, BenchConfig, BenchResult, Measurement, ratio_budget, verdict
from loadtests.bench.throughput import CEILING_APP, main, serve
from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "benchmarks.md"


def call(base: str, method: str, path: str, body: object | None = None) -> tuple[int, object]:
    response = httpx.request(method, base + path, json=body, timeout=10)
    return response.status_code, response.json()


@pytest.fixture(scope="module")
def ceiling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("ceiling") / "ceiling.log"
    process, base = serve(CEILING_APP, 1, dict(os.environ), log)
    try:
        yield base
    finally:
        stop(process, timeout=30)


def test_ceiling_issues_a_token(ceiling: str) -> None:
    status, body = call(ceiling, "POST", "/auth/token", {"client_id": "loadtest", "client_secret": "x"})
    assert status == 200
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


def test_ceiling_ingests_single_readings_with_distinct_ids(ceiling: str) -> None:
    reading = {"timestamp": "2025-11-23T10:30:45", "tag": "fermenter_temp", "value": 37.2, "device_id": "d"}
    first = call(ceiling, "POST", "/ingest", reading)
    second = call(ceiling, "POST", "/ingest", reading)
    assert first[0] == second[0] == 201
    assert first[1]["status"] == "success" and first[1]["is_anomaly"] is False
    assert first[1]["id"] != second[1]["id"]


@pytest.mark.parametrize("body", [[{"tag": "a"}] * 3, {"readings": [{"tag": "a"}] * 3}])
def test_ceiling_counts_the_readings_of_a_batch(ceiling: str, body: object) -> None:
    status, answer = call(ceiling, "POST", "/ingest/batch", body)
    assert status == 201
    assert answer["accepted"] == 3 and answer["duplicates"] == 0 and len(answer["results"]) == 3


@pytest.mark.parametrize(("path", "expected"), [
    ("/data", []), ("/sensors/stats", []), ("/sensors/anomalies/count", {"total": 0, "by_tag": {}}),
])
def test_ceiling_serves_the_read_paths(ceiling: str, path: str, expected: object) -> None:
    assert call(ceiling, "GET", path) == (200, expected)


def test_ceiling_health_and_unknown_paths(ceiling: str) -> None:
    assert call(ceiling, "GET", "/health")[1]["status"] == "ok"
    status, body = call(ceiling, "GET", "/nowhere")
    assert status == 404 and body["error"]["code"] == "not_found"


@pytest.mark.parametrize(("flags", "named"), [
    (["--users", "0"], "--users"),
    (["--ramp", "0"], "--ramp"),
    (["--hold", "-1"], "--hold"),
    (["--app-workers", "0"], "--app-workers"),
    (["--locust-workers", "-1"], "--locust-workers"),
    (["--doc", "/nonexistent-dir/benchmarks.md"], "--doc"),
    (["--users", "many"], "--users"),
])
def test_bad_flags_stop_with_a_message_naming_the_flag(flags: list[str], named: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(flags)
    assert stopped.value.code == 2
    assert named in capsys.readouterr().err


def measurement(target: str, rps: float, failures: int = 0, p99: float = 40.0, p50: float = 15.0) -> Measurement:
    return Measurement(target=target, users=1000, requests=int(rps * 60), failures=failures, rps=rps,
                       avg_ms=20.0, p50_ms=p50, p95_ms=30.0, p99_ms=p99)


CEILING_LIGHT = measurement("ceiling, light load", 1000, p50=10.0, p99=40.0)


def test_verdict_names_each_missed_target() -> None:
    light = measurement("app, light load", 1000, p50=30.0, p99=80.0)  # exactly 3x and 2x: within target
    assert verdict(BenchResult(measurement("ceiling", 4000), measurement("app", 2400), light, CEILING_LIGHT)) \
        == ("PASS", [])
    outcome, missed = verdict(BenchResult(measurement("ceiling", 4000), measurement("app", 2000, failures=3),
                                          measurement("app, light load", 1000, p50=31.0, p99=81.0), CEILING_LIGHT))
    assert outcome == "MISS"
    assert any("3 failed requests" in item for item in missed)
    assert any("50% of the ceiling" in item for item in missed)
    assert any("light load p50 3.1x" in item for item in missed)
    assert any("light load p99 2.0x" in item for item in missed)


def test_a_ceiling_percentile_under_locusts_resolution_gives_a_lower_bound_not_infinity() -> None:
    """Locust rounds times under 100 ms to the millisecond: a ceiling p50 of "0 ms" was under 0.5 ms."""
    floor = measurement("ceiling, light load", 1000, p50=0.0, p99=2.0)
    result = BenchResult(measurement("ceiling", 4000), measurement("app", 2400),
                         measurement("app, light load", 1000, p50=5.0, p99=4.0), floor)
    assert result.light_p50_factor == 10.0  # 5 ms against at most 0.5 ms
    assert result.light_factor_text("p50") == "≥ 10.0x" and result.light_factor_text("p99") == "2.0x"
    outcome, missed = verdict(result)
    assert outcome == "MISS" and missed == ["light load p50 ≥ 10.0x the ceiling's (target ≤ 3x)"]
    both_under = BenchResult(measurement("ceiling", 4000), measurement("app", 2400),
                             measurement("app, light load", 1000, p50=0.0, p99=4.0), floor)
    assert verdict(both_under) == ("PASS", [])


def test_the_ratio_budget_explains_the_ratio_from_the_cpu_accounting() -> None:
    """bbe171b's accounting: Locust 0.15 / 0.18 ms per request, the server side 0.38; on 2 cores that predicts
    2 * 0.15 / (0.18 + 0.38) = 0.54, and 0.60 needs the server side at 2 * 0.15 / 0.6 - 0.18 = 0.32 ms."""
    accounting = {
        "ceiling": Accounting({"app workers": 0.04, "Locust": 0.15}, {}),
        "app": Accounting({"app workers": 0.22, "PostgreSQL": 0.12, "broker": 0.01, "redis": 0.03, "Locust": 0.18}, {}),
    }
    result = BenchResult(measurement("ceiling", 6639), measurement("app", 3537),
                         measurement("app, light load", 1000), CEILING_LIGHT, accounting)
    budget = ratio_budget(result, cores=2)
    assert budget is not None
    assert "the server side 0.38 (app workers 0.22, PostgreSQL 0.12, broker 0.01, redis 0.03)" in budget
    assert "predicts 0.54" in budget and "≤ 0.32 ms (2.1x Locust's cost" in budget
    without = BenchResult(measurement("ceiling", 6639), measurement("app", 3537),
                          measurement("app, light load", 1000), CEILING_LIGHT, {"app": accounting["app"]})
    assert ratio_budget(without, cores=2) is None


@pytest.mark.parametrize("start", ["the repository's doc", "a doc without the section"])
def test_rows_create_the_section_once_and_parse_back(tmp_path: Path, start: str) -> None:
    doc = tmp_path / "benchmarks.md"
    if start == "the repository's doc":
        shutil.copy(DOC, doc)
    else:
        doc.write_text("# Benchmarks\n\n## Something else\n\nText.\n")
    before = doc.read_text()
    accounting = {"app": Accounting({"app workers": 0.5, "PostgreSQL": 0.25, "Locust": 0.125},
                                    {"CommitLatency": Timing(10, 4.0, 9.0)})}
    result = BenchResult(measurement("ceiling", 4000), measurement("app", 2500, failures=1),
                         measurement("app, light load", 990, p99=175.0), CEILING_LIGHT, accounting)
    when = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)
    rows = result_rows(result, BenchConfig(), when=when,
                       host_machine="2 cores (test CPU), 8 GiB RAM", git_revision="abc1234+dirty")
    cpu = cpu_rows(result, when=when, git_revision="abc1234+dirty")
    existing = len(read_rows(doc)) if SECTION in before else 1
    existing_cpu = len(read_rows(doc, CPU_SECTION)) if CPU_SECTION in before else 0
    append_rows(doc, rows, cpu)
    append_rows(doc, rows, cpu)

    text = doc.read_text()
    kept = [line for line in text.splitlines() if line not in rows + cpu]
    assert kept[:len(before.splitlines())] == before.splitlines()  # rows added, nothing rewritten or moved
    assert text.count(SECTION) == 1 and text.count(CPU_SECTION) == 1
    parsed = read_rows(doc)
    assert len(parsed) == existing + 8
    assert all(set(row) == set(COLUMNS) for row in parsed)
    assert parsed[0]["date (UTC)"] == SEED_ROW[0] and parsed[0]["req/s"] == "5000"
    ceiling, ceiling_light, app, light = parsed[-4:]
    assert [row["target"] for row in (ceiling, ceiling_light, app, light)] == [
        "ceiling", "ceiling, light load", "app", "app, light load"]
    accounted = read_rows(doc, CPU_SECTION)
    assert len(accounted) == existing_cpu + 2  # only the app phase had accounting
    assert accounted[-1]["phase"] == "app" and accounted[-1]["app workers CPU s/1k"] == "0.50"
    assert accounted[-1]["total CPU s/1k"] == "0.88" and accounted[-1]["broker CPU s/1k"] == "-"
    assert accounted[-1]["commit ms avg/max"] == "4.0 / 9" and accounted[-1]["loop lag ms avg/max"] == "-"
    assert app["revision"] == "abc1234+dirty" and app["date (UTC)"] == "2026-11-22 21:00"
    assert app["machine"] == "2 cores (test CPU), 8 GiB RAM"
    assert (ceiling["ratio to ceiling"], app["ratio to ceiling"], light["ratio to ceiling"]) == ("1.00", "0.62", "—")
    assert app["failures"] == "1 (0.001 %)" and "MISS" in app["notes"]
    assert light["p99 ms"] == "175" and "MISS" in light["notes"] and "p99 4.4x" in light["notes"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_tiny_bench_against_the_real_processes_records_its_rows(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """20 users, 3 s hold: ceiling and its light load, app on PostgreSQL + tansu + redis and its light load;
    rows and the core-seconds accounting land in a copy of the doc."""
    doc = tmp_path / "benchmarks.md"
    shutil.copy(DOC, doc)
    before = len(read_rows(doc)) if SECTION in doc.read_text() else 1

    code = main(["--users", "20", "--ramp", "1", "--hold", "3", "--app-workers", "1", "--doc", str(doc),
                 "--results-dir", str(tmp_path / "results")])

    output = capsys.readouterr().out
    assert code == 0, output
    rows = read_rows(doc)
    assert len(rows) == before + 4
    ceiling, ceiling_light, app, light = rows[-4:]
    assert [row["target"] for row in (ceiling, ceiling_light, app, light)] == [
        "ceiling", "ceiling, light load", "app", "app, light load"]
    for row in (ceiling, ceiling_light, app, light):
        assert row["users"] == "20"
        assert row["failures"] == "0 (0.000 %)", output
        assert float(row["req/s"]) > 0
        assert float(row["p50 ms"]) <= float(row["p95 ms"]) <= float(row["p99 ms"])
    assert "started after the relay drained the heavy phase's outbox" in light["notes"]
    assert float(app["ratio to ceiling"]) == pytest.approx(float(app["req/s"]) / float(ceiling["req/s"]), abs=0.02)
    assert "verdict: " in output
    # Locust's reports of each measurement are kept
    reports = sorted(path.parent.parent.name for path in (tmp_path / "results").glob("*-bench/*/*/summary.json"))
    assert reports == ["app", "ceiling", "ceiling-light", "light"]
    accounted = read_rows(doc, CPU_SECTION)[-4:]
    assert [row["phase"] for row in accounted] == ["ceiling", "ceiling, light load", "app", "app, light load"]
    for row in accounted:  # every window is accounted for its server and Locust (the bare ceiling's server
        # may round to 0.00 s per 1,000 requests in a 3 s window; the app's and Locust's never do)
        assert float(row["app workers CPU s/1k"]) >= 0 and float(row["Locust CPU s/1k"]) > 0, output
    for row in accounted[2:]:
        assert float(row["app workers CPU s/1k"]) > 0, output
    app_row = accounted[2]
    assert float(app_row["PostgreSQL CPU s/1k"]) > 0
    assert app_row["redis CPU s/1k"] != "-" and app_row["broker CPU s/1k"] != "-"  # accounted (may round to 0.00)
    assert app_row["group rows avg/max"] != "-" and app_row["commit ms avg/max"] != "-", output
    assert accounted[0]["PostgreSQL CPU s/1k"] == "-"  # no database behind the ceiling
