"""Profiles (selection, overrides, Locust arguments) and the users' generated data (seeded, ~5% anomalies,
unique devices and timestamps, history batches the service accepts)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from app.settings import Settings
from loadtests.locust.profiles import (
    PROFILES,
    SEED_BENCHMARK,
    add_locust_arguments,
    get_profile,
    profile_from_options,
)
from loadtests.locust.users import USER_CLASSES, DeviceFeed, apply_mix, history, make_device
from loadtests.simulator.generation import SEED004_METRICS

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def locust_options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_locust_arguments(parser)
    return parser.parse_args(argv)


def test_the_issue_profiles_exist_with_the_seed_benchmark_thresholds() -> None:
    assert {"benchmark_1000", "light_1000", "step", "spike", "soak", "smoke"} <= set(PROFILES)
    benchmark = get_profile("benchmark_1000")
    assert benchmark.timeline.users == 1000 and benchmark.pacing_s == 0  # closed loop
    assert benchmark.thresholds == SEED_BENCHMARK
    assert (SEED_BENCHMARK.fail_ratio, SEED_BENCHMARK.avg_ms, SEED_BENCHMARK.p95_ms, SEED_BENCHMARK.p99_ms,
            SEED_BENCHMARK.min_rps) == (0.002, 185, 320, 450, 5000)
    light = get_profile("light_1000")
    assert light.pacing_s == 1.0 and light.thresholds.p99_ms == 50
    for profile in PROFILES.values():
        assert set(profile.mix) == {user.__name__ for user in USER_CLASSES}, profile.name


def test_unknown_profile_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown profile 'marathon': use one of benchmark_1000, light_1000"):
        get_profile("marathon")


def test_locust_arguments_select_and_shrink_a_profile() -> None:
    profile = profile_from_options(locust_options("--load-profile", "light_1000", "--load-users", "100",
                                                  "--load-hold", "30", "--load-thresholds", "p99_ms=80"))
    assert (profile.name, profile.timeline.users, profile.timeline.hold_s, profile.timeline.ramp_s) == (
        "light_1000", 100, 30.0, 60)
    assert profile.thresholds.p99_ms == 80
    assert profile.thresholds.min_rps == pytest.approx(90)  # the floor follows the user count
    default = profile_from_options(locust_options())
    assert default.name == "smoke" and default == get_profile("smoke")


def test_web_ui_strings_are_converted_like_the_command_line() -> None:
    """The web UI writes its form fields back into the options as strings (empty when left blank)."""
    options = argparse.Namespace(load_profile="spike", load_users="50", load_ramp="", load_hold="10",
                                 load_ramp_down="", load_thresholds="")
    profile = profile_from_options(options)
    assert (profile.timeline.users, profile.timeline.baseline_users, profile.timeline.hold_s) == (50, 5, 10.0)


@pytest.mark.parametrize(("argv", "message"), [
    (["--load-users", "many"], "users must be an integer, got 'many'"),
    (["--load-ramp", "-5"], "ramp_s must be >= 0, got -5"),
    (["--load-thresholds", "p99=3"], "unknown threshold 'p99'"),
])
def test_bad_locust_arguments_name_the_field(argv: list[str], message: str) -> None:
    with pytest.raises(argparse.ArgumentError, match=message):
        locust_options(*argv)


def test_step_and_spike_stay_valid_when_users_shrink() -> None:
    step = get_profile("step").with_overrides(users=3)
    assert step.timeline.steps == 3 and [s.users for s in step.timeline.stages()] == [1, 2, 3, 0]
    spike = get_profile("spike").with_overrides(users=5)
    assert spike.timeline.baseline_users == 0 and spike.timeline.stages()[0].users == 5


def test_mix_sets_the_user_weights() -> None:
    apply_mix(get_profile("benchmark_1000").mix)
    assert {user.__name__: user.weight for user in USER_CLASSES} == dict(get_profile("benchmark_1000").mix)
    with pytest.raises(ValueError, match="weight 0"):
        apply_mix({})
    apply_mix(get_profile("smoke").mix)


def test_data_is_deterministic_per_seed_and_device() -> None:
    def items(seed: int, number: int) -> list[dict]:
        feed = DeviceFeed(make_device(seed, worker=0, number=number), seed, START)
        return [feed.next("seed002") for _ in range(20)] + [feed.next("seed004") for _ in range(5)]

    assert items(7, 3) == items(7, 3)
    assert items(7, 3) != items(8, 3)
    assert make_device(7, worker=1, number=3).device_id == "lt7-w1-00003" != make_device(7, 0, 3).device_id


def test_a_device_never_repeats_a_timestamp_and_rotates_tags() -> None:
    feed = DeviceFeed(make_device(1, 0, 0), 1, START)
    readings = feed.batch(300)
    assert len({r["timestamp"] for r in readings}) == 300
    assert {r["tag"] for r in readings} == {"fermenter_temp", "fermenter_ph", "agitator_rpm"}


def test_about_five_percent_of_items_are_anomalies() -> None:
    feed = DeviceFeed(make_device(1, 0, 0), 1, START)
    feed.batch(10_000)
    assert 0.04 < feed.anomalies / 10_000 < 0.06


def test_history_fits_the_services_batch_limit() -> None:
    readings, records = history(1, START)
    limit = Settings().max_batch_readings
    assert len(readings) <= limit and len(records) * len(SEED004_METRICS) <= limit
    assert {r["device_id"] for r in readings} == {"lt1-history-0", "lt1-history-1", "lt1-history-2"}
    assert max(r["timestamp"] for r in readings) < START.isoformat().replace("+00:00", "Z")
