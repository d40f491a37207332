"""Rolling z-score anomaly detection per (device_id, tag).

A value is an anomaly when |value - mean| / std > threshold, with mean and population standard
deviation taken over the previous `window` values of the same series (seed 002's rule).

Defined edge cases:
- warm-up: with fewer than `min_samples` previous values nothing is flagged (z is None);
- zero deviation (a perfectly steady series): any value that differs from the steady value is an
  anomaly (its z-score is infinite, stored as None); the same value is not.

`AnomalyDetector` keeps windows per process and bounded (least recently used series are dropped).
After a restart a series' window is rebuilt from stored history the first time it is seen
(`needs_history`/`load`), so a deploy does not reset detection. With a shared state store the windows
live there instead (app/state/windows.py) and this class is the per-process fallback; both judge
with `judge`, so a verdict depends only on the window's contents.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import mul

SeriesKey = tuple[str, str]  # (device_id, tag)


# Not frozen, like NewReading (app/readings.py): created for every reading.
@dataclass(slots=True)
class Verdict:
    is_anomaly: bool
    z_score: float | None


def judge(previous: Sequence[float], value: float, *, threshold: float, min_samples: int) -> Verdict:
    """The verdict on `value` given the series' previous values (oldest first).

    A pure function of the window's contents: mean and deviation come from correctly rounded sums
    (`math.fsum`, two passes) of correctly rounded squares (`d * d`, IEEE 754; `d ** 2` goes through
    the C library's `pow`, which is slower and rounds ~0.1 % of squares differently), so every process,
    and the shared store's copy of a window, reach the same verdict bit for bit whatever order the
    values were summed in elsewhere."""
    count = len(previous)
    if count < min_samples:
        return Verdict(False, None)
    mean = math.fsum(previous) / count
    # The squares in C (operator.mul is the same IEEE multiply as `d * d`): this runs for every reading.
    differences = [item - mean for item in previous]
    variance = math.fsum(map(mul, differences, differences)) / count
    std = math.sqrt(variance)
    deviation = abs(value - mean)
    # Below this the deviation is float noise, not a real spread.
    tolerance = 1e-9 * max(1.0, abs(mean))
    if std <= tolerance:
        return Verdict(deviation > tolerance, None)
    z_score = deviation / std
    return Verdict(z_score > threshold, z_score)


class AnomalyDetector:
    def __init__(self, *, window: int = 50, threshold: float = 3.0, min_samples: int = 10,
                 max_series: int = 200_000) -> None:
        self.window = window
        self.threshold = threshold
        self.min_samples = min_samples
        self.max_series = max_series
        self._windows: OrderedDict[SeriesKey, deque[float]] = OrderedDict()

    def needs_history(self, key: SeriesKey) -> bool:
        return key not in self._windows

    def load(self, key: SeriesKey, history_oldest_first: Iterable[float]) -> None:
        """Seed a series' window from stored values (no-op if the series is already live)."""
        if key in self._windows:
            return
        self._new_window(key).extend(history_oldest_first)

    def forget_all(self) -> None:
        """Drop every window (they are rebuilt from stored history when next needed), e.g. when this
        process takes over scoring from the shared store and its own copies are stale."""
        self._windows.clear()

    def score(self, key: SeriesKey, value: float) -> Verdict:
        """Judge `value` against the window, then add it to the window."""
        window = self._windows.get(key)
        if window is None:
            window = self._new_window(key)
        else:
            self._windows.move_to_end(key)
        verdict = self.judge(window, value)
        window.append(value)
        return verdict

    def judge(self, previous: Sequence[float], value: float) -> Verdict:
        """`judge` with this detector's threshold and warm-up."""
        return judge(previous, value, threshold=self.threshold, min_samples=self.min_samples)

    def _new_window(self, key: SeriesKey) -> deque[float]:
        window: deque[float] = deque(maxlen=self.window)
        self._windows[key] = window
        if len(self._windows) > self.max_series:
            self._windows.popitem(last=False)
        return window
