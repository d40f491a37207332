"""Every custom metric the service publishes, and the in-memory aggregator that emits them as EMF.

This module is the single owner of custom metric names: dashboards and alarms are checked against
`REGISTRY`, and recording a name that is not declared here raises `UnknownMetricError`.

`Metrics` aggregates in memory (O(1) per call, no I/O) and `flush()` writes ONE CloudWatch Embedded
Metric Format line per interval to stdout, which the awslogs driver ships to CloudWatch Logs, where
the metrics are extracted. The EMF JSON is built directly here rather than with aws-embedded-metrics'
serializer: that serializer works on a per-event `MetricsContext` holding every raw value, reads its
settings from process-wide environment configuration, and has no place for pre-aggregated values or
the exact distribution statistics this module adds.

Per interval:

- counters emit their sum, and 0 when untouched, so alarms on them always see data;
- gauges emit their last value and keep it across flushes (a gauge never set is not emitted);
- distributions emit up to 100 values (EMF's per-metric limit) chosen by reservoir sampling, with the
  exact minimum and maximum swapped in so CloudWatch's Minimum/Maximum are exact. CloudWatch's
  SampleCount and Sum of a distribution only cover the emitted values; the exact count/sum/min/max are
  in the line's `Distributions` member (Logs Insights: `fields Distributions.CommitLatency.count`).

Each ECS task emits its own datapoints with the same dimensions: alarms on service-wide gauges such as
OutboxPending or DeadLetterBacklog should use Maximum, not Sum.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.settings import Settings

SERVICE_NAME = "ingest"
DEFAULT_NAMESPACE = "SensorPlatform"
MAX_VALUES_PER_METRIC = 100  # EMF: a metric's value array holds at most 100 numbers
DISTRIBUTIONS_MEMBER = "Distributions"

_logger = logging.getLogger(__name__)


class Unit(StrEnum):
    COUNT = "Count"
    SECONDS = "Seconds"
    MILLISECONDS = "Milliseconds"


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    DISTRIBUTION = "distribution"


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    name: str
    unit: Unit
    kind: Kind
    description: str


class UnknownMetricError(LookupError):
    """A metric name that is not declared in `REGISTRY`."""


# --- metric names -------------------------------------------------------------------------------
READINGS_INGESTED = "ReadingsIngested"
ANOMALIES_DETECTED = "AnomaliesDetected"
VALIDATION_REJECTS = "ValidationRejects"
DUPLICATES = "DuplicateReadings"
DEAD_LETTERED = "ReadingsDeadLettered"
DEAD_LETTERS_REPLAYED = "DeadLettersReplayed"
DEAD_LETTER_BACKLOG = "DeadLetterBacklog"
DEAD_LETTER_OBJECTS = "DeadLetterObjects"
DEAD_LETTER_OLDEST_AGE = "DeadLetterOldestAge"
DEAD_LETTERS_WRITTEN = "DeadLettersWritten"
OUTBOX_PENDING = "OutboxPending"
OUTBOX_OLDEST_AGE = "OutboxOldestAge"
COMMIT_LATENCY = "CommitLatency"
COMMIT_BATCH_SIZE = "CommitBatchSize"
RELAY_PUBLISHED = "RelayPublished"
RELAY_FAILURES = "RelayFailures"
DB_CIRCUIT_OPEN = "DbCircuitOpen"
STATE_STORE_FALLBACKS = "StateStoreFallbacks"
STATE_STORE_UNAVAILABLE = "StateStoreUnavailable"
STATE_STORE_ROUND_TRIPS = "StateStoreRoundTrips"
COMMIT_WAIT = "CommitWait"
EVENT_LOOP_LAG = "EventLoopLag"

_DEFINITIONS = (
    MetricDefinition(READINGS_INGESTED, Unit.COUNT, Kind.COUNTER, "readings accepted and committed"),
    MetricDefinition(ANOMALIES_DETECTED, Unit.COUNT, Kind.COUNTER, "readings flagged as anomalous"),
    MetricDefinition(VALIDATION_REJECTS, Unit.COUNT, Kind.COUNTER, "readings rejected by validation"),
    MetricDefinition(DUPLICATES, Unit.COUNT, Kind.COUNTER, "readings already stored, ignored"),
    MetricDefinition(DEAD_LETTERED, Unit.COUNT, Kind.COUNTER, "readings written to the dead-letter store"),
    MetricDefinition(DEAD_LETTERS_REPLAYED, Unit.COUNT, Kind.COUNTER, "dead-lettered readings committed"),
    MetricDefinition(DEAD_LETTER_BACKLOG, Unit.COUNT, Kind.GAUGE,
                     "readings waiting in the dead-letter store (counted from the letters' names)"),
    MetricDefinition(DEAD_LETTER_OBJECTS, Unit.COUNT, Kind.GAUGE,
                     "letters (objects; each coalesces a task's failed groups of one window) waiting"),
    MetricDefinition(DEAD_LETTER_OLDEST_AGE, Unit.SECONDS, Kind.GAUGE, "age of the oldest waiting letter"),
    MetricDefinition(DEAD_LETTERS_WRITTEN, Unit.COUNT, Kind.COUNTER, "letters (objects) written: PUTs"),
    MetricDefinition(OUTBOX_PENDING, Unit.COUNT, Kind.GAUGE, "outbox rows not yet published"),
    MetricDefinition(OUTBOX_OLDEST_AGE, Unit.SECONDS, Kind.GAUGE, "age of the oldest unpublished outbox row"),
    MetricDefinition(COMMIT_LATENCY, Unit.MILLISECONDS, Kind.DISTRIBUTION, "duration of one group commit"),
    MetricDefinition(COMMIT_BATCH_SIZE, Unit.COUNT, Kind.DISTRIBUTION, "readings in one group commit"),
    MetricDefinition(COMMIT_WAIT, Unit.MILLISECONDS, Kind.DISTRIBUTION,
                     "how long a group's oldest request queued before its transaction started"),
    MetricDefinition(EVENT_LOOP_LAG, Unit.MILLISECONDS, Kind.DISTRIBUTION,
                     "how late a 100 ms timer fired on the worker's event loop (time the loop was busy)"),
    MetricDefinition(RELAY_PUBLISHED, Unit.COUNT, Kind.COUNTER, "outbox rows published to Kafka"),
    MetricDefinition(RELAY_FAILURES, Unit.COUNT, Kind.COUNTER, "failed outbox publish attempts"),
    MetricDefinition(DB_CIRCUIT_OPEN, Unit.COUNT, Kind.GAUGE, "1 while the database circuit breaker is open"),
    MetricDefinition(STATE_STORE_FALLBACKS, Unit.COUNT, Kind.COUNTER,
                     "rate-limit checks and readings scored by the per-task fallback (shared store unreachable)"),
    MetricDefinition(STATE_STORE_UNAVAILABLE, Unit.COUNT, Kind.GAUGE, "1 while this task has the shared state store marked down"),
    MetricDefinition(STATE_STORE_ROUND_TRIPS, Unit.COUNT, Kind.COUNTER, "pipelines sent to the shared state store"),
)

REGISTRY: Mapping[str, MetricDefinition] = MappingProxyType({d.name: d for d in _DEFINITIONS})
if len(REGISTRY) != len(_DEFINITIONS):
    raise RuntimeError("metric names in app.observability.metrics are not unique")


def definition(name: str) -> MetricDefinition:
    """The declaration of `name`; raises `UnknownMetricError` for an undeclared name."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownMetricError(f"metric {name!r} is not declared in app.observability.metrics") from None


def dimensions_for(app_env: str) -> dict[str, str]:
    """The service's one dimension set."""
    return {"Service": SERVICE_NAME, "Environment": app_env}


def print_line(line: str) -> None:
    """Default sink: the line and its newline in one write, so concurrent log lines cannot split it."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class _Distribution:
    """Exact count/sum/min/max plus a uniform reservoir sample (Algorithm R) of at most `capacity`."""

    __slots__ = ("capacity", "count", "maximum", "minimum", "samples", "total")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.samples: list[float] = []

    def add(self, value: float, rng: random.Random) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        if len(self.samples) < self.capacity:
            self.samples.append(value)
        else:
            slot = int(rng.random() * self.count)
            if slot < self.capacity:
                self.samples[slot] = value

    def emitted_values(self) -> list[float]:
        values = list(self.samples)
        if self.count > len(values):
            # The sample's extremes stand in for the population's; swap in the exact ones.
            values[values.index(min(values))] = self.minimum
            values[values.index(max(values))] = self.maximum
        return values

    def statistics(self) -> dict[str, float | int]:
        return {"count": self.count, "sum": self.total, "min": self.minimum, "max": self.maximum}


class Metrics:
    """In-memory aggregator for the metrics in `REGISTRY`, flushed as one EMF line per interval.

    Recording is thread-safe (a lock, since group commits or the relay may run in worker threads) and
    does no I/O; serialisation and the sink call happen in `flush()`, outside the lock.
    """

    def __init__(
        self,
        namespace: str,
        dimensions: Mapping[str, str],
        clock: Callable[[], float] = time.time,
        sink: Callable[[str], None] = print_line,
        *,
        rng: random.Random | None = None,
        sample_capacity: int = MAX_VALUES_PER_METRIC,
    ) -> None:
        if not 2 <= sample_capacity <= MAX_VALUES_PER_METRIC:
            raise ValueError(f"sample_capacity must be between 2 and {MAX_VALUES_PER_METRIC}")
        clashes = {*dimensions} & {*REGISTRY, "_aws", DISTRIBUTIONS_MEMBER}
        if clashes:
            raise ValueError(f"dimension names clash with EMF members: {sorted(clashes)}")
        self.namespace = namespace
        self.dimensions = dict(dimensions)
        self._clock = clock
        self._sink = sink
        self._rng = rng or random.Random()
        self._sample_capacity = sample_capacity
        self._counter_names = [d.name for d in _DEFINITIONS if d.kind is Kind.COUNTER]
        self._lock = threading.Lock()
        self._counters: dict[str, float] = dict.fromkeys(self._counter_names, 0)
        self._gauges: dict[str, float] = {}
        self._distributions: dict[str, _Distribution] = {}
        self._interval_started = clock()
        self._stop_requested: asyncio.Event | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Metrics:
        return cls(settings.metrics_namespace, dimensions_for(settings.app_env), **kwargs)

    # --- hot path ----------------------------------------------------------------------------
    def increment(self, name: str, n: float = 1) -> None:
        _check(name, Kind.COUNTER)
        if not (n >= 0 and math.isfinite(n)):
            raise ValueError(f"counter {name} can only grow by a finite non-negative amount, got {n!r}")
        with self._lock:
            self._counters[name] += n

    def gauge(self, name: str, value: float) -> None:
        _check(name, Kind.GAUGE)
        _check_finite(name, value)
        with self._lock:
            self._gauges[name] = value

    def observe(self, name: str, value: float) -> None:
        _check(name, Kind.DISTRIBUTION)
        _check_finite(name, value)
        with self._lock:
            distribution = self._distributions.get(name)
            if distribution is None:
                distribution = self._distributions[name] = _Distribution(self._sample_capacity)
            distribution.add(value, self._rng)

    # --- reading and emitting ----------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Current interval's values, for a local /metrics view."""
        with self._lock:
            counters = dict(self._counters)
            gauges = dict(self._gauges)
            distributions = {
                name: {**d.statistics(), **_percentiles(d.samples)} for name, d in self._distributions.items()
            }
            interval_started = self._interval_started
        return {
            "namespace": self.namespace,
            "dimensions": dict(self.dimensions),
            "interval_started": interval_started,
            "counters": counters,
            "gauges": gauges,
            "distributions": distributions,
        }

    def flush(self) -> str:
        """Emit the interval as one EMF line to the sink, reset counters and distributions; returns it."""
        now = self._clock()
        with self._lock:
            counters, self._counters = self._counters, dict.fromkeys(self._counter_names, 0)
            distributions, self._distributions = self._distributions, {}
            gauges = dict(self._gauges)
            interval_started, self._interval_started = self._interval_started, now
        line = self._render(interval_started, counters, gauges, distributions)
        self._sink(line)
        return line

    def _render(
        self,
        interval_started: float,
        counters: Mapping[str, float],
        gauges: Mapping[str, float],
        distributions: Mapping[str, _Distribution],
    ) -> str:
        values: dict[str, float | list[float]] = {}
        for metric in _DEFINITIONS:  # declaration order keeps the line stable for humans and tests
            if metric.kind is Kind.COUNTER:
                values[metric.name] = counters[metric.name]
            elif metric.kind is Kind.GAUGE and metric.name in gauges:
                values[metric.name] = gauges[metric.name]
            elif metric.kind is Kind.DISTRIBUTION and metric.name in distributions:
                values[metric.name] = distributions[metric.name].emitted_values()
        document: dict[str, Any] = {
            "_aws": {
                # The interval's start: with the flusher aligned to the interval, each interval's
                # values land in the CloudWatch period they were recorded in.
                "Timestamp": int(interval_started * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [list(self.dimensions)],
                        "Metrics": [{"Name": name, "Unit": str(REGISTRY[name].unit)} for name in values],
                    }
                ],
            },
            **self.dimensions,
            **values,
        }
        if distributions:
            document[DISTRIBUTIONS_MEMBER] = {name: d.statistics() for name, d in distributions.items()}
        return json.dumps(document, separators=(",", ":"))

    # --- background flushing -----------------------------------------------------------------
    async def run_flusher(self, interval_seconds: float) -> None:
        """Flush every `interval_seconds`, aligned to multiples of it on the clock, until cancelled or
        `stop()`; flushes once more on the way out so the last partial interval is not lost."""
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self._stop_requested = stop_requested = asyncio.Event()
        try:
            while not stop_requested.is_set():
                delay = interval_seconds - (self._clock() % interval_seconds)
                try:
                    await asyncio.wait_for(stop_requested.wait(), timeout=delay)
                except TimeoutError:
                    self._flush_logging_errors()
        finally:
            self._flush_logging_errors()

    def stop(self) -> None:
        """Ask a running `run_flusher` to do its final flush and return."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    def _flush_logging_errors(self) -> None:
        try:
            self.flush()
        except Exception:
            _logger.exception("metrics flush failed")


def _check(name: str, kind: Kind) -> None:
    metric = definition(name)
    if metric.kind is not kind:
        raise TypeError(f"metric {name} is a {metric.kind}, not a {kind}")


def _check_finite(name: str, value: float) -> None:
    # NaN or infinity would make the EMF line invalid JSON and lose the whole interval.
    if not math.isfinite(value):
        raise ValueError(f"metric {name} needs a finite value, got {value!r}")


def _percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)
    return {
        f"p{p}": ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)] for p in (50, 90, 99)
    }
