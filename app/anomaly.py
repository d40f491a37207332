"""Rolling z-score anomaly detection per (device_id, tag).

A value is an anomaly when |value - mean| / std > threshold, with mean and population standard
deviation taken over the previous `window` values of the same series (seed 002's rule).

Defined edge cases:
- warm-up: with fewer than `min_samples` previous values nothing is flagged (z is None);
- zero deviation (a perfectly steady series): any value that differs from the steady value is an
  anomaly (its z-score is infinite, stored as None); the same value is not.

Windows are per process and bounded (least recently used series are dropped). After a restart a
series' window is rebuilt from stored history the first time it is seen (`needs_history`/`load`),
so a deploy does not reset detection.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

SeriesKey = tuple[str, str]  # (device_id, tag)


@dataclass(frozen=True, slots=True)
class Verdict:
    is_anomaly: bool
    z_score: float | None


class _Window:
    """Values of one series with running sums, kept relative to a reference value so the
    variance does not lose precision to cancellation (e.g. rpm around 450)."""

    __slots__ = ("reference", "sum", "sum_squares", "values")

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self.reference: float | None = None
        self.sum = 0.0
        self.sum_squares = 0.0

    def push(self, value: float) -> None:
        if self.reference is None:
            self.reference = value
        if len(self.values) == self.values.maxlen:
            dropped = self.values[0] - self.reference
            self.sum -= dropped
            self.sum_squares -= dropped * dropped
        self.values.append(value)
        shifted = value - self.reference
        self.sum += shifted
        self.sum_squares += shifted * shifted

    def stats(self) -> tuple[float, float]:
        count = len(self.values)
        mean_shifted = self.sum / count
        variance = max(0.0, self.sum_squares / count - mean_shifted * mean_shifted)
        return self.reference + mean_shifted, math.sqrt(variance)


class AnomalyDetector:
    def __init__(self, *, window: int = 50, threshold: float = 3.0, min_samples: int = 10,
                 max_series: int = 200_000) -> None:
        self.window = window
        self.threshold = threshold
        self.min_samples = min_samples
        self.max_series = max_series
        self._windows: OrderedDict[SeriesKey, _Window] = OrderedDict()

    def needs_history(self, key: SeriesKey) -> bool:
        return key not in self._windows

    def load(self, key: SeriesKey, history_oldest_first: Iterable[float]) -> None:
        """Seed a series' window from stored values (no-op if the series is already live)."""
        if key in self._windows:
            return
        window = self._new_window(key)
        for value in history_oldest_first:
            window.push(value)

    def score(self, key: SeriesKey, value: float) -> Verdict:
        """Judge `value` against the window, then add it to the window."""
        window = self._windows.get(key)
        if window is None:
            window = self._new_window(key)
        else:
            self._windows.move_to_end(key)
        verdict = self._judge(window, value)
        window.push(value)
        return verdict

    def _judge(self, window: _Window, value: float) -> Verdict:
        if len(window.values) < self.min_samples:
            return Verdict(False, None)
        mean, std = window.stats()
        deviation = abs(value - mean)
        # Below this the deviation is float noise of the running sums, not a real spread.
        tolerance = 1e-9 * max(1.0, abs(mean))
        if std <= tolerance:
            return Verdict(deviation > tolerance, None)
        z_score = deviation / std
        return Verdict(z_score > self.threshold, z_score)

    def _new_window(self, key: SeriesKey) -> _Window:
        window = _Window(self.window)
        self._windows[key] = window
        if len(self._windows) > self.max_series:
            self._windows.popitem(last=False)
        return window
