"""Paced users (loadtests/locust/pacing.py): each at its own phase, then one task per pacing interval."""

from __future__ import annotations

import itertools
import random

import pytest

from loadtests.locust.pacing import Pacer
from tests.support.clock import ManualClock


def test_users_started_together_get_phases_spread_over_the_interval() -> None:
    # Locust starts a group of users at the same instant: their first tasks must not stay in step.
    clock = ManualClock(100.0)
    phases = sorted(Pacer(1.0, random.Random(f"seed:user-{n}:phase"), clock).wait() for n in range(200))
    assert all(0.0 <= phase < 1.0 for phase in phases)
    # Roughly uniform: every tenth of the second holds some users, none holds most of them.
    tenths = [sum(1 for phase in phases if k / 10 <= phase < (k + 1) / 10) for k in range(10)]
    assert min(tenths) >= 5 and max(tenths) <= 40, tenths


def test_each_task_starts_one_interval_after_the_previous_one_whatever_it_took() -> None:
    clock = ManualClock(100.0)
    pacer = Pacer(1.0, random.Random(3), clock)
    phase = pacer.wait()
    clock.now += phase  # the user sleeps its phase
    starts = []
    for task_seconds in (0.010, 0.300, 0.002, 0.950, 0.040):
        starts.append(clock.now)
        clock.now += task_seconds
        clock.now += pacer.wait()
    assert starts[0] == pytest.approx(100.0 + phase)
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([1.0] * 4)


def test_a_task_longer_than_the_interval_is_followed_at_once_and_keeps_no_debt() -> None:
    clock = ManualClock(100.0)
    pacer = Pacer(1.0, random.Random(3), clock)
    clock.now += pacer.wait()
    clock.now += 2.5  # a slow task
    assert pacer.wait() == 0.0
    clock.now += 0.1
    assert pacer.wait() == pytest.approx(0.9)


def test_the_same_seed_gives_the_same_phase() -> None:
    assert Pacer(1.0, random.Random("s:d:phase")).wait() == Pacer(1.0, random.Random("s:d:phase")).wait()


@pytest.mark.parametrize("pacing", [0.0, -1.0])
def test_pacing_must_be_positive(pacing: float) -> None:
    with pytest.raises(ValueError, match="pacing_s must be > 0"):
        Pacer(pacing, random.Random(1))
