"""The drills' Locust run: headless, loadtests/drills/ledger_locustfile.py, every request kept in a ledger."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Protocol

LOCUSTFILE = Path(__file__).with_name("ledger_locustfile.py")


class LoadShape(Protocol):
    """What a drill's configuration says about its load (DrillConfig, FaultConfig)."""

    users: int
    spawn_rate: float

    @property
    def run_time(self) -> int: ...


def start_locust(host: str, config: LoadShape, workdir: Path, extra_env: dict[str, str] | None = None) \
        -> subprocess.Popen:
    """Headless Locust for config.run_time seconds; the ledger and Locust's JSON stats land in workdir."""
    env = {**os.environ, "DRILL_LEDGER": str(workdir / "ledger.json"), **(extra_env or {})}
    log = open(workdir / "locust.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(config.users),
         "-r", str(config.spawn_rate), "--run-time", f"{config.run_time}s", "--stop-timeout", "30",
         "--host", host, "--json-file", str(workdir / "locust"), "--only-summary", "--loglevel", "INFO"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
