"""The sensor simulator (loadtests/simulator/): pure generation, the CLI, the spool, and end-to-end runs
against the real service served by uvicorn on SQLite (no fake server: the counts must match what
GET /data returns)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.readings import ReadingRules, validate_batch
from app.settings import DEFAULT_TAG_RANGES
from devstack.processes import free_port, stop
from loadtests.simulator.config import SimulatorConfig, parse_config
from loadtests.simulator.delivery import Deliverer, Outcome, TokenProvider
from loadtests.simulator.generation import (
    SEED002_PROFILES,
    SEED002_TAGS,
    SEED004_FIELDS,
    SEED004_METRICS,
    SEED004_PROFILES,
    Generated,
    Shape,
    device_rng,
    generate_item,
    make_devices,
    tick_offset,
)
from loadtests.simulator.runner import Simulator
from loadtests.simulator.spool import Spool, rejected_path
from loadtests.simulator.stats import Stats
from tests.conftest import REPO_ROOT

START = datetime(2025, 11, 23, 10, 0, tzinfo=UTC)
# The documented load-test client: high limits, so verification queries never eat the simulator's bucket.
VERIFIER = {"client_id": "loadtest", "client_secret": "loadtest-local-secret"}
SERVICE_START_TIMEOUT = 30.0
RUN_TIMEOUT = 20.0

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def generate(shape: Shape, *, seed: int, devices: int, ticks: int, anomaly_rate: float = 0.05,
             start: datetime = START) -> list[Generated]:
    """`ticks` items per device, as the run loop would produce them (one rng stream per device)."""
    items = []
    for device in make_devices(shape, devices, seed):
        rng = device_rng(seed, device.index)
        for tick in range(ticks):
            timestamp = start + timedelta(seconds=tick_offset(device.index, tick, devices, rate=1.0))
            items.append(generate_item(shape, rng, device, tick=tick, timestamp=timestamp, anomaly_rate=anomaly_rate))
    return items


def service_rules() -> ReadingRules:
    """The service's own validation rules with its default ranges (app/settings.py)."""
    return ReadingRules(tag_ranges=DEFAULT_TAG_RANGES, max_clock_skew=timedelta(days=1),
                        max_age=timedelta(days=3650), max_batch=100_000)


# --- generation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["seed002", "seed004"])
def test_same_seed_generates_the_same_items(shape: Shape) -> None:
    first = generate(shape, seed=42, devices=3, ticks=50)
    assert first == generate(shape, seed=42, devices=3, ticks=50)
    assert first != generate(shape, seed=43, devices=3, ticks=50)


@pytest.mark.parametrize("shape", ["seed002", "seed004"])
def test_injected_anomaly_rate_is_close_to_the_requested_rate(shape: Shape) -> None:
    items = generate(shape, seed=7, devices=10, ticks=1000)  # 10,000 items
    rate = sum(item.anomaly for item in items) / len(items)
    # Binomial standard deviation at n=10,000, p=0.05 is 0.0022: this is a ~4.5 sigma band.
    assert 0.04 <= rate <= 0.06


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**31), shape=st.sampled_from(["seed002", "seed004"]),
       anomaly_rate=st.sampled_from([0.0, 0.05, 0.5, 1.0]))
def test_every_generated_item_passes_the_services_own_validation(seed: int, shape: Shape,
                                                                 anomaly_rate: float) -> None:
    items = generate(shape, seed=seed, devices=2, ticks=60, anomaly_rate=anomaly_rate)
    now = START + timedelta(minutes=5)
    readings = validate_batch([item.body for item in items], service_rules(), now)  # raises if any is invalid
    for reading in readings:
        low, high = DEFAULT_TAG_RANGES[reading.tag]
        assert (low is None or reading.value >= low) and (high is None or reading.value <= high)


def test_injected_spikes_are_in_range_but_far_from_the_mean() -> None:
    items = generate("seed002", seed=3, devices=3, ticks=400, anomaly_rate=0.2)
    spikes = [item.body for item in items if item.anomaly]
    normal = [item.body for item in items if not item.anomaly]
    assert spikes and normal
    for body in spikes:
        profile = SEED002_PROFILES[body["tag"]]
        assert abs(body["value"] - profile.mean) / profile.stddev >= 4
    far = sum(abs(body["value"] - SEED002_PROFILES[body["tag"]].mean) > 4 * SEED002_PROFILES[body["tag"]].stddev
              for body in normal)
    assert far / len(normal) < 0.001


def test_seed004_records_have_every_field_and_one_spiked_metric_per_anomaly() -> None:
    items = generate("seed004", seed=11, devices=4, ticks=300, anomaly_rate=0.1)
    for item in items:
        assert set(item.body) == set(SEED004_FIELDS)
        assert item.body["device_id"].startswith("sim-device-")
        assert item.body["status"] in {"active", "low_battery"}
        assert re.fullmatch(r"\d+\.\d+\.\d+", item.body["firmware_version"])
        assert -90 <= item.body["latitude"] <= 90 and -180 <= item.body["longitude"] <= 180
        distances = [abs(item.body[name] - SEED004_PROFILES[name].mean) / SEED004_PROFILES[name].stddev
                     for name in SEED004_METRICS]
        assert (max(distances) >= 4) == item.anomaly


def test_seed002_devices_rotate_tags_with_unique_utc_timestamps() -> None:
    items = generate("seed002", seed=5, devices=3, ticks=30)
    keys = {(item.body["device_id"], item.body["tag"], item.body["timestamp"]) for item in items}
    assert len(keys) == len(items), "(device_id, tag, timestamp) must be unique or the service deduplicates"
    assert {item.body["tag"] for item in items} == set(SEED002_TAGS)
    assert all(item.body["timestamp"].endswith("Z") for item in items)
    assert datetime.fromisoformat(items[0].body["timestamp"]) == START


# --- command line ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "0"], "argument --rate: must be > 0, got 0"),
        (["--rate", "fast"], "argument --rate: must be a number"),
        (["--devices", "0"], "argument --devices: must be >= 1"),
        (["--anomaly-rate", "1.5"], "argument --anomaly-rate: must be >= 0 and <= 1"),
        (["--batch-size", "5000"], "argument --batch-size: must be >= 1 and <= 1000"),
        (["--duration", "-1"], "argument --duration: must be > 0"),
        (["--shape", "seed003"], "argument --shape: invalid choice"),
        (["--url", "localhost:8000"], "argument --url: must be an http(s) URL"),
    ],
)
def test_bad_values_are_refused_naming_the_flag(argv: list[str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_config(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_defaults_and_module_help() -> None:
    config = parse_config([])
    assert (config.url, config.client_id, config.devices, config.rate) == ("http://127.0.0.1:8000", "simulator", 5, 1.0)
    assert (config.shape, config.anomaly_rate, config.batch_size, config.duration) == ("seed002", 0.05, 1, None)
    assert config.spool == Path("var/simulator-spool.jsonl")
    assert parse_config(["--seed", "9"]).seed == 9
    result = subprocess.run([sys.executable, "-m", "loadtests.simulator", "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0
    assert "--anomaly-rate" in result.stdout and "--spool" in result.stdout


# --- spool ---------------------------------------------------------------------------------------------


def test_spool_round_trip_and_a_torn_line_does_not_corrupt_the_next(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "nested" / "spool.jsonl")
    single = {"timestamp": "2025-11-23T10:00:00.000000Z", "tag": "fermenter_ph", "value": 7.01, "device_id": "d"}
    batch = [single, {**single, "tag": "fermenter_temp", "value": 37.2}]
    spool.append([single, batch])
    assert spool.read() == ([single, batch], [])
    with spool.path.open("a") as spool_file:
        spool_file.write('{"timestamp": "2025-11-23T1')  # a crash mid-write
    spool.append([single])
    bodies, malformed = spool.read()
    assert bodies == [single, batch, single]
    assert malformed == ['{"timestamp": "2025-11-23T1']
    spool.truncate()
    assert spool.path.read_bytes() == b""
    assert spool.read() == ([], [])


# --- against the real service -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`uvicorn app.main:app` in a subprocess on a free port, SQLite and dead letters in a temp dir."""
    root = tmp_path_factory.mktemp("service")
    port = free_port()
    env = {
        **os.environ,
        "SENSOR_DATABASE_URL": f"sqlite+aiosqlite:///{root}/db.sqlite",
        "SENSOR_DEAD_LETTER_DIR": str(root / "dl"),
        "SENSOR_METRICS_FLUSH_SECONDS": "3600",
    }
    log_path = root / "uvicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_ready(url, process, log_path)
            yield url
        finally:
            stop(process)


def _wait_until_ready(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + SERVICE_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the service was not ready after {SERVICE_START_TIMEOUT}s:\n{log_path.read_text()[-3000:]}")


async def stored_per_tag(url: str, tags: tuple[str, ...]) -> dict[str, int]:
    """How many readings GET /data returns per tag (the tests stay far below its 1000 limit)."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        token = (await client.post("/auth/token", json=VERIFIER)).json()["access_token"]
        counts = {}
        for tag in tags:
            response = await client.get("/data", params={"tag": tag, "limit": 1000},
                                        headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text
            counts[tag] = len(response.json())
            assert counts[tag] < 1000
        return counts


def fast_config(url: str, spool: Path, **overrides: object) -> SimulatorConfig:
    base = SimulatorConfig(url=url, spool=spool, seed=1, devices=2, rate=4.0, duration=1.5, max_attempts=2,
                           backoff_base=0.01, request_timeout=5.0, report_interval=60.0)
    return replace(base, **overrides)


async def run_simulator(config: SimulatorConfig) -> tuple[Stats, str]:
    out = io.StringIO()
    simulator = Simulator(config, out=out)
    stats = await asyncio.wait_for(simulator.run(), RUN_TIMEOUT)
    assert simulator.fatal_error is None
    return stats, out.getvalue()


def unreachable_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize(("shape", "batch_size"), [("seed002", 1), ("seed004", 3)])
async def test_every_accepted_item_is_stored(service_url: str, tmp_path: Path, shape: Shape,
                                             batch_size: int) -> None:
    # A seed004 record is stored as one reading per metric.
    tags, readings_per_item = (SEED002_TAGS, 1) if shape == "seed002" else (SEED004_METRICS, len(SEED004_METRICS))
    before = await stored_per_tag(service_url, tags)
    config = fast_config(service_url, tmp_path / "spool.jsonl", shape=shape, batch_size=batch_size, devices=3)
    stats, output = await run_simulator(config)

    scheduled_items = 3 * 6  # 3 devices x 4/s x 1.5 s; a device that lags at the deadline skips the rest
    assert 0 < stats.accepted == stats.sent <= scheduled_items
    assert (stats.duplicates, stats.dead_lettered, stats.spooled, stats.rejected) == (0, 0, 0, 0)
    after = await stored_per_tag(service_url, tags)
    stored = sum(after.values()) - sum(before.values())
    assert stored == stats.accepted * readings_per_item
    assert re.search(rf"\[simulator final [\d.]+s\] sent={stats.sent} accepted={stats.accepted} duplicates=0 ",
                     output)
    assert not config.spool.exists() or config.spool.read_bytes() == b""


@pytest.mark.slow
@pytest.mark.anyio
async def test_undelivered_items_are_spooled_then_replayed_and_truncated_after_acknowledgement(
    service_url: str, tmp_path: Path
) -> None:
    spool_path = tmp_path / "spool.jsonl"
    down = fast_config(unreachable_url(), spool_path, duration=0.5)
    stats, _ = await run_simulator(down)
    assert stats.accepted == 0
    assert 0 < stats.spooled == stats.sent <= 4  # 2 devices x 4/s x 0.5 s
    spooled, malformed = Spool(spool_path).read()
    assert len(spooled) == stats.spooled and not malformed  # batch size 1: one line per reading

    # Still down: the replay fails, so nothing may be dropped from the spool.
    stats, _ = await run_simulator(replace(down, url=unreachable_url(), seed=2, duration=0.1))
    assert stats.replayed == 1 and stats.accepted == 0
    still_spooled, _ = Spool(spool_path).read()
    assert still_spooled[:len(spooled)] == spooled and len(still_spooled) == len(spooled) + stats.spooled

    before = await stored_per_tag(service_url, SEED002_TAGS)
    stats, _ = await run_simulator(fast_config(service_url, spool_path, seed=3, duration=0.01))
    assert stats.replayed == len(still_spooled)
    assert stats.accepted == stats.sent and stats.spooled == 0
    assert spool_path.read_bytes() == b""
    after = await stored_per_tag(service_url, SEED002_TAGS)
    assert sum(after.values()) - sum(before.values()) == stats.accepted


@pytest.mark.slow
@pytest.mark.anyio
async def test_replaying_already_stored_readings_counts_duplicates(service_url: str, tmp_path: Path) -> None:
    spool_path = tmp_path / "spool.jsonl"
    stats, _ = await run_simulator(fast_config(service_url, spool_path, seed=4, duration=0.5))
    assert stats.accepted > 0
    # As if the previous run crashed after delivering but before truncating its spool.
    generated = generate("seed002", seed=99, devices=1, ticks=3, start=datetime.now(UTC) - timedelta(minutes=5))
    Spool(spool_path).append([item.body for item in generated])
    first, _ = await run_simulator(fast_config(service_url, spool_path, seed=5, duration=0.01))
    Spool(spool_path).append([item.body for item in generated])
    second, _ = await run_simulator(fast_config(service_url, spool_path, seed=6, duration=0.01))
    assert first.replayed == second.replayed == 3
    assert second.duplicates == 3
    assert spool_path.read_bytes() == b""


@pytest.mark.slow
def test_sigterm_stops_cleanly_with_a_final_summary(service_url: str, tmp_path: Path) -> None:
    spool_path = tmp_path / "spool.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "loadtests.simulator", "--url", service_url, "--devices", "2", "--rate", "2",
         "--report-interval", "0.5", "--spool", str(spool_path), "--seed", "8"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.startswith("[simulator ") and "accepted=0 " not in line:
                break
        else:
            pytest.fail("no summary line with an accepted reading")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    finally:
        stop(process)
    assert process.returncode == 0, err
    final = re.search(r"\[simulator final [\d.]+s\] (.*)", out)
    assert final, out
    counters = {name: int(value) for name, value in re.findall(r"(\w+)=(\d+)", final.group(1))}
    assert counters["accepted"] > 0
    assert counters["sent"] == counters["accepted"] + counters["duplicates"] + counters["spooled"]
    assert "SIGTERM" in err


@pytest.mark.anyio
async def test_a_torn_spool_line_is_set_aside_and_the_rest_kept_while_the_service_is_down(tmp_path: Path) -> None:
    spool_path = tmp_path / "spool.jsonl"
    body = generate("seed002", seed=1, devices=1, ticks=1, start=datetime.now(UTC))[0].body
    Spool(spool_path).append([body])
    with spool_path.open("a") as spool_file:
        spool_file.write('{"tag": "ferm')
    stats, _ = await run_simulator(fast_config(unreachable_url(), spool_path, duration=0.01))
    bodies, malformed = Spool(spool_path).read()
    assert bodies[0] == body and len(bodies) == 1 + stats.spooled and not malformed
    assert rejected_path(spool_path).read_text() == '{"tag": "ferm\n'


@pytest.mark.slow
@pytest.mark.anyio
async def test_refused_credentials_stop_the_run_and_spool_what_was_generated(service_url: str,
                                                                             tmp_path: Path) -> None:
    config = fast_config(service_url, tmp_path / "spool.jsonl", client_secret="wrong", duration=1.0)  # noqa: S106
    simulator = Simulator(config, out=io.StringIO())
    stats = await asyncio.wait_for(simulator.run(), RUN_TIMEOUT)
    assert simulator.fatal_error is not None and "invalid_client" in simulator.fatal_error
    assert stats.accepted == 0
    assert 0 < stats.spooled == stats.sent == len(Spool(config.spool).read()[0])


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_rejected_token_is_replaced_once_and_the_request_retried(service_url: str) -> None:
    config = fast_config(service_url, Path("unused"))
    body = generate("seed002", seed=12, devices=1, ticks=1, start=datetime.now(UTC))[0].body
    async with httpx.AsyncClient(base_url=service_url, timeout=5) as client:
        tokens = TokenProvider(client, config.client_id, config.client_secret)
        stale = await tokens.token()
        rejected = stale + "x"
        tokens._token = rejected  # as if it had expired: the service answers 401
        deliverer = Deliverer(client, tokens, Stats(), asyncio.Event(), config)
        result = await asyncio.wait_for(deliverer.deliver(body), RUN_TIMEOUT)
        assert result.outcome is Outcome.DELIVERED and result.statuses == ("success",)
        assert await tokens.token() != rejected
