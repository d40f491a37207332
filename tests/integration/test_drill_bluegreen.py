"""The blue/green drill, reduced: 30 Locust users for ~15 s through HAProxy while blue is replaced by
green on the session PostgreSQL. No request may fail and the database must hold every acknowledged
reading exactly once. `make drill-bluegreen` runs the full size (200 users) and records the numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.drills.bluegreen import DrillConfig, run_drill, summary
from loadtests.harness.haproxy import ensure_haproxy


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_blue_green_switch_loses_no_request(postgres_url: str, tmp_path: Path) -> None:
    ensure_haproxy()  # CI starts from a fresh machine: apt-get install haproxy, like the drill
    config = DrillConfig(users=30, spawn_rate=30, warmup=3, switch_budget=10, after=3)
    result = run_drill(config, tmp_path, database_url=postgres_url, verbose=False)
    table = summary(result)

    assert result.failed == 0 and result.locust_failures == 0, table
    assert result.total == result.locust_total > 500, table
    assert result.switch_requests > 0 and result.served["blue"] > 0 and result.served["green"] > 0, table
    assert result.acknowledged > 0 and result.missing == 0 and result.unexpected == 0, table
    assert result.stored == result.acknowledged + result.unanswered_stored and result.duplicates == 0, table
    assert result.blue_exit in (0, -15) and result.blue_stopped_cleanly, table
    assert result.ok, table
