"""Load shapes: the stages of each timeline kind, and the tick() sequence the Locust shape worker sees,
including when the hold window opens and closes (on a real Locust environment and runner)."""

from __future__ import annotations

import time

import pytest
from locust import FastHttpUser, task
from locust.env import Environment

from loadtests.locust.profiles import PROFILES
from loadtests.locust.shapes import Stage, Timeline, TimelineShape, stage_at
from loadtests.locust.thresholds import hold_window


class IdleUser(FastHttpUser):
    host = "http://127.0.0.1:9"

    @task
    def nothing(self) -> None:  # never spawned: the runner is only the shape's host
        pass


class FixedShape(TimelineShape):
    plan = Timeline("ramp_hold", users=10, ramp_s=5, hold_s=10, ramp_down_s=2)

    def timeline(self, environment):
        return self.plan


def ticks_at(shape: TimelineShape, seconds: list[float]) -> list[tuple[int, float] | None]:
    """tick() as the shape worker would call it at each elapsed time (the shape's clock set back)."""
    results = []
    for elapsed in seconds:
        shape.start_time = time.perf_counter() - elapsed
        results.append(shape.tick())
    return results


@pytest.fixture
def shape() -> FixedShape:
    environment = Environment(user_classes=[IdleUser], shape_class=FixedShape())
    environment.create_local_runner()
    environment.shape_class.reset_time()
    return environment.shape_class


def test_ramp_hold_stages() -> None:
    stages = Timeline("ramp_hold", users=1000, ramp_s=60, hold_s=180, ramp_down_s=20).stages()
    assert stages == (
        Stage(60, 1000, pytest.approx(1000 / 60), measured=False),
        Stage(240, 1000, pytest.approx(1000 / 60), measured=True),
        Stage(260, 0, 50.0, measured=False),
    )


def test_ramp_hold_without_ramps_is_the_hold_alone() -> None:
    timeline = Timeline("ramp_hold", users=20, ramp_s=0, hold_s=30, ramp_down_s=0)
    assert timeline.stages() == (Stage(30, 20, 20.0, measured=True),)
    assert timeline.hold_window == (0.0, 30)


def test_step_climbs_in_equal_steps_and_measures_the_top_one() -> None:
    timeline = Timeline("step", users=1000, ramp_s=240, hold_s=120, ramp_down_s=20, steps=5)
    stages = timeline.stages()
    assert [(s.until_s, s.users, s.measured) for s in stages] == [
        (60, 200, False), (120, 400, False), (180, 600, False), (240, 800, False), (360, 1000, True), (380, 0, False),
    ]
    assert timeline.hold_window == (240, 360)


def test_spike_jumps_from_the_baseline_and_returns_to_it() -> None:
    timeline = Timeline("spike", users=1000, ramp_s=60, hold_s=60, ramp_down_s=60, baseline_users=100)
    stages = timeline.stages()
    assert [(s.until_s, s.users, s.measured) for s in stages] == [(60, 100, False), (120, 1000, True),
                                                                   (180, 100, False)]
    # The jump of 900 users happens within MAX_SPAWN_SECONDS, not over the whole stage.
    assert stages[1].spawn_rate == 180.0
    assert timeline.hold_window == (60, 120)


@pytest.mark.parametrize(("changes", "message"), [
    ({"users": 0}, "users must be >= 1, got 0"),
    ({"hold_s": 0}, "hold_s must be > 0"),
    ({"ramp_s": -1}, "ramp_s must be >= 0, got -1"),
    ({"kind": "wave"}, "kind must be one of ramp_hold, step, spike, got 'wave'"),
    ({"kind": "spike", "baseline_users": 10}, "baseline_users must be >= 0 and below users (10), got 10"),
])
def test_a_bad_timeline_names_the_field(changes: dict, message: str) -> None:
    values = {"kind": "ramp_hold", "users": 10, "ramp_s": 1, "hold_s": 5, "ramp_down_s": 1, **changes}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Timeline(**values)


def test_every_profile_has_a_hold_window_inside_its_run() -> None:
    for profile in PROFILES.values():
        start, end = profile.timeline.hold_window
        assert 0 <= start < end <= profile.timeline.duration_s, profile.name


def test_stage_at_ends_after_the_last_stage() -> None:
    stages = FixedShape.plan.stages()
    assert stage_at(stages, 0).users == 10
    assert stage_at(stages, 16.9).users == 0
    assert stage_at(stages, 17.0) is None


def test_tick_sequence_and_hold_window(shape: FixedShape) -> None:
    window = hold_window(shape.runner.environment)
    assert ticks_at(shape, [0, 4.9]) == [(10, 2.0), (10, 2.0)]
    assert window.start is None  # the ramp is not measured
    assert ticks_at(shape, [5.1]) == [(10, 2.0)]
    assert window.start is not None and window.end is None
    assert ticks_at(shape, [14.9]) == [(10, 2.0)]
    assert window.end is None
    assert ticks_at(shape, [15.1, 16.5]) == [(0, 5.0), (0, 5.0)]
    assert window.end is not None and window.end.at >= window.start.at
    assert ticks_at(shape, [17.5]) == [None]


def test_the_window_closes_when_the_run_ends_inside_the_hold(shape: FixedShape) -> None:
    shape.plan = Timeline("ramp_hold", users=4, ramp_s=0, hold_s=3, ramp_down_s=0)
    window = hold_window(shape.runner.environment)
    assert ticks_at(shape, [0.5, 3.5]) == [(4, 4.0), None]
    assert window.start is not None and window.end is not None


def test_a_new_run_reads_the_timeline_again(shape: FixedShape) -> None:
    assert ticks_at(shape, [1]) == [(10, 2.0)]
    shape.plan = Timeline("ramp_hold", users=3, ramp_s=1, hold_s=2, ramp_down_s=0)
    assert ticks_at(shape, [1.5]) == [(10, 2.0)]  # same run: the timeline it started with
    shape.reset_time()  # what Locust does when a run starts
    assert ticks_at(shape, [1.5]) == [(3, 3.0)]
