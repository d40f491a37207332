"""Load shapes: a profile's timeline as stages, and the one Locust shape class that plays them.

Three kinds of timeline (all times in seconds):
- ramp_hold (benchmark, soak, light, smoke): ramp to `users` in `ramp_s`, hold `hold_s`, ramp down in `ramp_down_s`;
- step: climb to `users` in `steps` equal steps, the lower ones sharing `ramp_s`, hold the top step `hold_s`,
  ramp down;
- spike: `baseline_users` for `ramp_s`, jump to `users` for `hold_s`, back to the baseline for `ramp_down_s`.

The hold (the top step, the spike) is the measured window the thresholds judge. Locust's shape
worker calls `tick()` about once a second on the master (or the single local process); `runner.start`
blocks while users spawn, so a stage is entered when the previous spawn finished and the hold window
starts when the users are really all there.

Why one shape class and not one per profile: headless Locust always takes the first shape class of
a locustfile, so several classes cannot be selected by name on the command line. One class reading
`--load-profile` works the same headless, distributed (only the master ticks) and in the web UI
(where `--load-profile` is a drop-down among the custom parameters).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from locust import LoadTestShape

from loadtests.locust.thresholds import hold_window

Kind = Literal["ramp_hold", "step", "spike"]
KINDS: tuple[Kind, ...] = ("ramp_hold", "step", "spike")
# Spawning is spread over at most this long per stage change, so one change never blocks the shape long.
MAX_SPAWN_SECONDS = 5.0


@dataclass(frozen=True)
class Stage:
    until_s: float  # the stage ends this many seconds after the start
    users: int
    spawn_rate: float
    measured: bool  # part of the hold window


@dataclass(frozen=True)
class Timeline:
    kind: Kind
    users: int
    ramp_s: float
    hold_s: float
    ramp_down_s: float
    steps: int = 1
    baseline_users: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.users < 1:
            problems.append(f"users must be >= 1, got {self.users}")
        for name in ("ramp_s", "ramp_down_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.hold_s <= 0:
            problems.append(f"hold_s must be > 0 (the thresholds are judged over it), got {self.hold_s}")
        if self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        if self.kind == "spike" and not 0 <= self.baseline_users < self.users:
            problems.append(f"baseline_users must be >= 0 and below users ({self.users}), got {self.baseline_users}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def duration_s(self) -> float:
        return self.stages()[-1].until_s

    @property
    def hold_window(self) -> tuple[float, float]:
        measured = [index for index, stage in enumerate(self.stages()) if stage.measured]
        stages = self.stages()
        start = stages[measured[0] - 1].until_s if measured[0] else 0.0
        return start, stages[measured[-1]].until_s

    def stages(self) -> tuple[Stage, ...]:
        return {"ramp_hold": self._ramp_hold, "step": self._step, "spike": self._spike}[self.kind]()

    def _ramp_hold(self) -> tuple[Stage, ...]:
        rate = self.users / max(self.ramp_s, 1.0)
        stages = [Stage(self.ramp_s, self.users, rate, measured=False)] if self.ramp_s else []
        stages.append(Stage(self.ramp_s + self.hold_s, self.users, rate, measured=True))
        return (*stages, *self._ramp_down(stages[-1].until_s))

    def _step(self) -> tuple[Stage, ...]:
        step_s = self.ramp_s / max(self.steps - 1, 1)  # the lower steps share the ramp; the top one is the hold
        stages, until = [], 0.0
        for step in range(1, self.steps + 1):
            users = round(self.users * step / self.steps)
            top = step == self.steps
            until += self.hold_s if top else step_s
            step_users = users - (stages[-1].users if stages else 0)
            stages.append(Stage(until, users, _spawn_rate(step_users, self.hold_s if top else step_s), measured=top))
        return (*stages, *self._ramp_down(until))

    def _spike(self) -> tuple[Stage, ...]:
        jump = self.users - self.baseline_users
        stages = []
        if self.baseline_users and self.ramp_s:
            stages.append(Stage(self.ramp_s, self.baseline_users, _spawn_rate(self.baseline_users, self.ramp_s), False))
        stages.append(Stage(self.ramp_s + self.hold_s, self.users, _spawn_rate(jump, self.hold_s), measured=True))
        until = stages[-1].until_s
        if self.baseline_users and self.ramp_down_s:
            until += self.ramp_down_s
            stages.append(Stage(until, self.baseline_users, _spawn_rate(jump, self.ramp_down_s), measured=False))
        return tuple(stages)

    def _ramp_down(self, start_s: float) -> tuple[Stage, ...]:
        if not self.ramp_down_s:
            return ()
        return (Stage(start_s + self.ramp_down_s, 0, self.users / max(self.ramp_down_s, 1.0), measured=False),)


def _spawn_rate(users: int, stage_s: float) -> float:
    """Start (or stop) `users` within a quarter of the stage, at most MAX_SPAWN_SECONDS: a step or a spike is sudden."""
    return max(1.0, abs(users) / max(1.0, min(MAX_SPAWN_SECONDS, stage_s / 4)))


def stage_at(stages: tuple[Stage, ...], elapsed_s: float) -> Stage | None:
    return next((stage for stage in stages if elapsed_s < stage.until_s), None)


class TimelineShape(LoadTestShape):
    """Plays `timeline(environment)` from the start of each run and marks the hold window
    (`loadtests.locust.thresholds.hold_window(environment)`, reset by the locustfile's test_start hook).

    Abstract: loadtests/locust/locustfile.py's subclass takes the timeline of the `--load-profile` profile, so the
    web UI can switch profiles between runs; tests give it a fixed timeline.
    """

    abstract = True

    def timeline(self, environment: Any) -> Timeline:
        raise NotImplementedError

    def reset_time(self) -> None:
        super().reset_time()
        self._stages: tuple[Stage, ...] | None = None

    def tick(self) -> tuple[int, float] | None:
        environment = self.runner.environment
        if getattr(self, "_stages", None) is None:  # a new run
            self._stages = self.timeline(environment).stages()
        stage = stage_at(self._stages, self.get_run_time())
        window = hold_window(environment)
        if stage is not None and stage.measured:
            window.begin(environment.stats.total, time.time())
        elif window.start is not None:  # past the measured stages (or at the end)
            window.finish(environment.stats.total, time.time())
        return None if stage is None else (stage.users, stage.spawn_rate)
