"""A clock the test sets by hand, for code that takes a `clock` (a callable returning seconds)."""

from __future__ import annotations


class ManualClock:
    """Returns `now`; tests set it or `advance` it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
