"""Rolling z-score: warm-up, zero deviation, threshold, window roll-over, history seeding."""

from __future__ import annotations

import random
import statistics

import pytest

from app.anomaly import AnomalyDetector

KEY = ("device", "fermenter_temp")


def test_nothing_is_flagged_during_warm_up() -> None:
    detector = AnomalyDetector(window=50, threshold=3.0, min_samples=10)
    verdicts = [detector.score(KEY, v) for v in [37.0] * 9 + [1000.0]]
    assert [v.is_anomaly for v in verdicts] == [False] * 10
    assert all(v.z_score is None for v in verdicts)


def test_steady_series_flags_any_change_and_not_the_same_value() -> None:
    detector = AnomalyDetector(window=50, threshold=3.0, min_samples=10)
    for _ in range(60):
        assert detector.score(KEY, 37.2).is_anomaly is False
    assert detector.score(KEY, 37.2).is_anomaly is False
    change = detector.score(KEY, 37.3)
    assert change.is_anomaly is True and change.z_score is None


def test_z_score_matches_population_statistics_of_the_previous_window() -> None:
    rng = random.Random(7)
    detector = AnomalyDetector(window=50, threshold=3.0, min_samples=10)
    history = [450 + rng.gauss(0, 40) for _ in range(120)]
    for value in history:
        detector.score(KEY, value)
    window = history[-50:]
    candidate = 600.0
    expected = abs(candidate - statistics.fmean(window)) / statistics.pstdev(window)
    verdict = detector.score(KEY, candidate)
    assert verdict.z_score == pytest.approx(expected, rel=1e-9)
    assert verdict.is_anomaly is (expected > 3.0)


@pytest.mark.parametrize(("threshold", "expected"), [(3.0, False), (2.9, True)])
def test_threshold_is_strict_and_configurable(threshold: float, expected: bool) -> None:
    detector = AnomalyDetector(window=50, threshold=threshold, min_samples=10)
    for value in [10.0, 12.0] * 25:  # mean 11, population std 1
        detector.score(KEY, value)
    assert detector.score(KEY, 14.0).is_anomaly is expected  # z = 3.0


def test_series_are_independent() -> None:
    detector = AnomalyDetector(window=50, threshold=3.0, min_samples=10)
    for _ in range(20):
        detector.score(("a", "fermenter_temp"), 37.0)
    assert detector.score(("b", "fermenter_temp"), 48.0).is_anomaly is False  # b is still warming up


def test_history_seeds_a_window_so_a_restart_keeps_detecting() -> None:
    restarted = AnomalyDetector(window=50, threshold=3.0, min_samples=10)
    assert restarted.needs_history(KEY)
    restarted.load(KEY, [37.0 + (0.1 if i % 2 else -0.1) for i in range(50)])
    assert not restarted.needs_history(KEY)
    assert restarted.score(KEY, 48.5).is_anomaly is True


def test_least_recently_used_series_are_dropped_beyond_the_bound() -> None:
    detector = AnomalyDetector(window=5, threshold=3.0, min_samples=2, max_series=2)
    for device in ("a", "b", "c"):
        detector.score((device, "t"), 1.0)
    assert detector.needs_history(("a", "t")) and not detector.needs_history(("c", "t"))
