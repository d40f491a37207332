"""make bench-store-cost (loadtests/bench/store_cost.py): ABBA order, the cost arithmetic, the rows it
appends, flag validation, and one tiny round against the real processes."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loadtests.bench.benchmarks_doc import read_rows
from loadtests.bench.results import Accounting, Measurement
from loadtests.bench.store_cost import SECTION, Phase, main, phase_order, rows, summarise
from tests.conftest import REPO_ROOT


def phase(store_on: bool, rps: float, app_cpu: float = 0.5) -> Phase:
    return Phase(store_on,
                 Measurement(target="app", users=1000, requests=int(rps * 45), failures=0, rps=rps, avg_ms=400.0,
                             p50_ms=380.0, p95_ms=600.0, p99_ms=700.0),
                 Accounting({"app workers": app_cpu, "PostgreSQL": 0.15, "Locust": 0.25}, {}))


def test_each_round_is_on_off_off_on() -> None:
    assert phase_order(1) == [True, False, False, True]
    assert phase_order(2) == [True, False, False, True] * 2
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        phase_order(0)


def test_the_cost_is_the_share_of_the_store_off_throughput_lost_and_each_adjacent_pair_gives_the_spread() -> None:
    phases = [phase(True, 1800, 0.55), phase(False, 2000), phase(False, 2200), phase(True, 2000, 0.55)]
    summary = summarise(phases)
    assert summary.cost == pytest.approx(1 - 1900 / 2100)
    # pairs: (on 1800, off 2000), (off 2200, on 2000); the off/off pair in the middle is not one
    assert summary.pair_costs == pytest.approx((0.10, 1 - 2000 / 2200))
    assert summary.extra_cpu_per_thousand == pytest.approx(0.05)
    assert "9.5 % of the throughput" in summary.describe() and "+10.0 %" in summary.describe()


def test_a_faster_store_on_side_is_a_negative_cost_not_hidden() -> None:
    summary = summarise([phase(True, 2100), phase(False, 2000), phase(False, 2000), phase(True, 2100)])
    assert summary.cost == pytest.approx(-0.05)


def test_without_both_sides_there_is_no_cost() -> None:
    with pytest.raises(ValueError, match="one phase with the store on and one with it off"):
        summarise([phase(True, 2000), phase(True, 2100)])


def test_rows_name_each_phase_and_the_last_carries_the_summary() -> None:
    phases = [phase(True, 1800), phase(False, 2000), phase(False, 2000), phase(True, 1900)]
    table = rows(phases, summarise(phases), when=datetime(2026, 12, 3, 13, 30, tzinfo=UTC),
                 host_machine="2 cores (test CPU)", git_revision="abc1234")
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
    assert [row[3:5] for row in cells] == [["1", "on"], ["2", "off"], ["3", "off"], ["4", "on"]]
    assert [row[6] for row in cells] == ["1800", "2000", "2000", "1900"]
    assert cells[0][12] == "-"  # no redis group accounted in this phase
    assert cells[-1][-1].startswith("state store cost: 7.5 %") and all(row[-1] == "" for row in cells[:-1])


@pytest.mark.parametrize(("flags", "named"), [
    (["--rounds", "0"], "--rounds"),
    (["--rounds", "6"], "--rounds"),
    (["--users", "0"], "--users"),
    (["--hold", "0"], "--hold"),
    (["--app-workers", "17"], "--app-workers"),
    (["--doc", "/nonexistent-dir/benchmarks.md"], "--doc"),
])
def test_bad_flags_stop_with_a_message_naming_the_flag(flags: list[str], named: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(flags)
    assert stopped.value.code == 2
    assert named in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_one_tiny_round_against_the_real_processes_records_four_phases(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "benchmarks.md"
    shutil.copy(REPO_ROOT / "docs" / "benchmarks.md", doc)
    before = len(read_rows(doc, SECTION)) if SECTION in doc.read_text() else 0

    code = main(["--rounds", "1", "--users", "10", "--ramp", "1", "--hold", "2", "--app-workers", "1",
                 "--doc", str(doc), "--results-dir", str(tmp_path / "results")])

    output = capsys.readouterr().out
    assert code == 0, output
    recorded = read_rows(doc, SECTION)[before:]
    assert [row["store"] for row in recorded] == ["on", "off", "off", "on"]
    for row in recorded:
        assert row["failures"] == "0" and float(row["req/s"]) > 0, output
        assert float(row["app workers CPU s/1k"]) > 0 and float(row["PostgreSQL CPU s/1k"]) > 0
    assert all(row["redis CPU s/1k"] != "-" for row in recorded if row["store"] == "on")
    assert all(row["redis CPU s/1k"] == "-" for row in recorded if row["store"] == "off")
    assert recorded[-1]["notes"].startswith("state store cost: ") and "state store cost: " in output
