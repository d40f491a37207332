"""Load-test profiles by name: the timeline (load shape), the pass/fail thresholds and the user mix.

    benchmark_1000  1000 closed-loop users: ramp 60 s, hold 180 s, ramp down 20 s; the seed's numbers
                    (99.8% success, avg 185 ms, p95 320 ms, p99 450 ms, >= 5000 req/s) for deployed environments
    light_1000      1000 users at one task per second each; p99 <= 50 ms
    step            5 steps of 200 closed-loop users, 60 s each, the top step held 120 s (measured)
    spike           100 users for 60 s, 1000 for 60 s (measured), 100 again for 60 s
    soak            500 closed-loop users held for an hour
    smoke           4 paced users for ~11 s, generous thresholds: "does the suite and the service work"

Durations, users and thresholds can be overridden per run (`python -m loadtests.locust.run --users 200 --hold 30
--threshold p99_ms=300`), which is how the bench and the tests shrink a profile; min_rps follows an
overridden user count. The mix is a weight per user class of loadtests/locust/users.py; `pacing_s` 0 means
closed loop (a user sends its next request as soon as the previous one is answered), otherwise each
user starts one task every `pacing_s` seconds, at a random phase of its own (loadtests/locust/pacing.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from loadtests.locust.shapes import Timeline
from loadtests.locust.thresholds import Thresholds, parse_overrides

# The seed's headline (seed 000): 1000 users, 5000 req/s, avg 185 ms, p95 320 ms, p99 450 ms, 99.8% success.
SEED_BENCHMARK = Thresholds(fail_ratio=0.002, avg_ms=185, p95_ms=320, p99_ms=450, min_rps=5000)

# Weights per user class (loadtests/locust/users.py). Mostly single-reading ingest like the seed's devices;
# batches are few but carry BATCH_SIZE readings each; dashboards read a little.
DEFAULT_MIX: Mapping[str, int] = MappingProxyType(
    {"SingleIngestUser": 60, "TelemetryUser": 20, "BatchIngestUser": 5, "DashboardUser": 15}
)
EQUAL_MIX: Mapping[str, int] = MappingProxyType(dict.fromkeys(DEFAULT_MIX, 1))


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    timeline: Timeline
    thresholds: Thresholds
    mix: Mapping[str, int] = field(default_factory=lambda: DEFAULT_MIX)
    pacing_s: float = 0.0
    batch_size: int = 50  # readings per POST /ingest/batch

    def with_overrides(
        self,
        *,
        users: int | None = None,
        ramp_s: float | None = None,
        hold_s: float | None = None,
        ramp_down_s: float | None = None,
        thresholds: Mapping[str, float] | None = None,
    ) -> Profile:
        """A copy with the given values replaced; a bad value raises ValueError naming the field."""
        changes = {name: value for name, value in
                   (("users", users), ("ramp_s", ramp_s), ("hold_s", hold_s), ("ramp_down_s", ramp_down_s))
                   if value is not None}
        timeline = self.timeline
        if "users" in changes and timeline.kind == "spike":
            # Keep the spike a spike: the baseline stays a tenth of the peak.
            changes["baseline_users"] = min(timeline.baseline_users, changes["users"] // 10)
        if "users" in changes and timeline.kind == "step":
            changes["steps"] = min(timeline.steps, changes["users"])
        scaled = self.thresholds
        if "users" in changes and scaled.min_rps is not None:
            # A throughput floor is per user count: fewer users, proportionally lower floor.
            scaled = replace(scaled, min_rps=scaled.min_rps * changes["users"] / timeline.users)
        return replace(
            self,
            timeline=replace(timeline, **changes),
            thresholds=scaled.with_overrides(dict(thresholds or {})),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "timeline": vars(self.timeline).copy(),
            "hold_window_s": self.timeline.hold_window, "duration_s": self.timeline.duration_s,
            "thresholds": self.thresholds.as_dict(), "mix": dict(self.mix), "pacing_s": self.pacing_s,
            "batch_size": self.batch_size,
        }


PROFILES: Mapping[str, Profile] = MappingProxyType({profile.name: profile for profile in (
    Profile(
        "benchmark_1000", "the seed's 1000-user benchmark: ramp, hold, ramp down (closed loop)",
        Timeline("ramp_hold", users=1000, ramp_s=60, hold_s=180, ramp_down_s=20),
        SEED_BENCHMARK,
    ),
    Profile(
        "light_1000", "1000 users at one task per second each: latency under light load",
        Timeline("ramp_hold", users=1000, ramp_s=60, hold_s=120, ramp_down_s=10),
        Thresholds(fail_ratio=0.002, p99_ms=50, min_rps=900),
        pacing_s=1.0,
    ),
    Profile(
        "step", "5 steps of 200 closed-loop users every 60 s; the top step is held and measured",
        Timeline("step", users=1000, ramp_s=240, hold_s=120, ramp_down_s=20, steps=5),
        SEED_BENCHMARK,
    ),
    Profile(
        "spike", "100 users, a sudden jump to 1000 for 60 s (measured), back to 100: errors stay rare",
        Timeline("spike", users=1000, ramp_s=60, hold_s=60, ramp_down_s=60, baseline_users=100),
        Thresholds(fail_ratio=0.01, p95_ms=800, p99_ms=1500),
    ),
    Profile(
        "soak", "500 closed-loop users held for an hour: no drift, no leak, no errors",
        Timeline("ramp_hold", users=500, ramp_s=60, hold_s=3600, ramp_down_s=20),
        Thresholds(fail_ratio=0.002, avg_ms=185, p95_ms=320, p99_ms=450, min_rps=2500),
    ),
    Profile(
        "smoke", "4 paced users (one of each class) for a few seconds: the suite and the service work",
        Timeline("ramp_hold", users=4, ramp_s=2, hold_s=8, ramp_down_s=1),
        Thresholds(fail_ratio=0.0, p99_ms=5000, min_rps=1),
        mix=EQUAL_MIX, pacing_s=0.2, batch_size=20,
    ),
)})
DEFAULT_PROFILE = "smoke"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)}") from None


# --------------------------------------------------------------------------------------------------
# The profile of a Locust run: --load-profile plus the --load-* overrides (custom Locust arguments)
# --------------------------------------------------------------------------------------------------

OVERRIDE_OPTIONS = {"load_users": ("users", int), "load_ramp": ("ramp_s", float), "load_hold": ("hold_s", float),
                    "load_ramp_down": ("ramp_down_s", float)}


def add_locust_arguments(parser: Any) -> None:
    """The custom Locust arguments selecting and adjusting the profile (shown in the web UI too).

    Values stay strings because the web UI writes its form fields back as strings; they are checked here
    (a clear argparse error on the command line) and converted in `profile_from_options`.
    """
    parser.add_argument("--load-profile", choices=tuple(PROFILES), default=DEFAULT_PROFILE,
                        help=f"load shape, thresholds and user mix (default {DEFAULT_PROFILE})")
    for option, (field_name, kind) in OVERRIDE_OPTIONS.items():
        parser.add_argument(f"--{option.replace('_', '-')}", type=_checked(field_name, kind), default="",
                            help=f"override the profile's {field_name}")
    parser.add_argument("--load-thresholds", type=_checked_thresholds, default="",
                        help="override thresholds, e.g. p99_ms=450,fail_ratio=0.002")


def _checked(field_name: str, kind: type) -> Any:
    def check(text: str) -> str:
        _convert(field_name, kind, text)
        return text

    return check


def _checked_thresholds(text: str) -> str:
    try:
        parse_overrides(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _convert(field_name: str, kind: type, text: str | None) -> Any:
    if text is None or str(text).strip() == "":
        return None
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{field_name} must be {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None
    if value < 0 or (field_name in ("users", "hold_s") and value == 0):
        raise argparse.ArgumentTypeError(f"{field_name} must be {'>= 0' if field_name.startswith('ramp') else '> 0'}, "
                                         f"got {text}")
    return value


def profile_from_options(options: Any) -> Profile:
    """The profile named by `options.load_profile` with the `--load-*` overrides applied."""
    return _resolved(options.load_profile, getattr(options, "load_thresholds", "") or "",
                     *(str(getattr(options, option, "") or "") for option in OVERRIDE_OPTIONS))


@lru_cache(maxsize=64)  # users ask for it on every wait: parse each combination once
def _resolved(name: str, thresholds: str, *override_texts: str) -> Profile:
    overrides = {field_name: _convert(field_name, kind, text)
                 for (field_name, kind), text in zip(OVERRIDE_OPTIONS.values(), override_texts, strict=True)}
    return get_profile(name).with_overrides(**overrides, thresholds=parse_overrides(thresholds))


def active_profile(environment: Any) -> Profile:
    """The running profile, from the environment's parsed options (updated by the web UI before each run;
    sent by the master to its workers). Without parsed options (a library use), the default profile."""
    options = environment.parsed_options
    if options is None or not getattr(options, "load_profile", None):
        return get_profile(DEFAULT_PROFILE)
    return profile_from_options(options)
