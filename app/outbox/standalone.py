"""The outbox relay as its own process: `python -m app.outbox.standalone`.

Reads the service's settings (SENSOR_DATABASE_URL, SENSOR_KAFKA_BOOTSTRAP or the MSK ARN, topic and
pacing), publishes the outbox exactly as the in-process relay does (app/outbox/relay.py: row locks with
SKIP LOCKED, so it may run next to other relays) and emits its own EMF line per interval
(RelayPublished, RelayFailures, OutboxPending, OutboxOldestAge). Run it with the app's
SENSOR_RELAY_IN_PROCESS=false, so the app workers' event loops and cores serve requests only.
SIGTERM/SIGINT: finish the in-flight batch, stop the producer, exit 0. Until the schema exists (the
app migrates it) publishing fails and is retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from app.observability import metrics as m
from app.observability.gc_tuning import tune_for_serving
from app.observability.logging import configure_logging
from app.outbox.relay import OutboxRelay, create_relay
from app.settings import Settings
from app.storage.database import create_engine

log = logging.getLogger(__name__)
GAUGE_INTERVAL_SECONDS = 5.0


class Reporter:
    """Adds what the relay published (and failed) since the last call to the metrics."""

    def __init__(self, relay: OutboxRelay, metrics: m.Metrics) -> None:
        self.relay, self.metrics = relay, metrics
        self.published = self.failures = 0

    def counters(self) -> None:
        self.metrics.increment(m.RELAY_PUBLISHED, self.relay.published_total - self.published)
        self.metrics.increment(m.RELAY_FAILURES, self.relay.failures_total - self.failures)
        self.published, self.failures = self.relay.published_total, self.relay.failures_total

    async def run(self) -> None:
        """Counters and the outbox backlog, every GAUGE_INTERVAL_SECONDS."""
        while True:
            self.counters()
            with contextlib.suppress(Exception):
                pending, oldest_age = await self.relay.pending_stats()
                self.metrics.gauge(m.OUTBOX_PENDING, pending)
                self.metrics.gauge(m.OUTBOX_OLDEST_AGE, oldest_age)
            await asyncio.sleep(GAUGE_INTERVAL_SECONDS)


async def run(settings: Settings) -> None:
    if not settings.kafka_enabled:
        raise SystemExit("the relay process needs SENSOR_KAFKA_BOOTSTRAP or SENSOR_MSK_CLUSTER_ARN")
    engine = create_engine(settings)
    relay = await create_relay(engine, settings)
    metrics = m.Metrics.from_settings(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    relaying = asyncio.create_task(relay.run(), name="outbox-relay")
    reporter = Reporter(relay, metrics)
    side = [asyncio.create_task(reporter.run(), name="relay-gauges"),
            asyncio.create_task(metrics.run_flusher(settings.metrics_flush_seconds), name="metrics")]
    tune_for_serving()  # a process of its own: nothing to undo on the way out
    log.info("outbox relay process started", extra={"topic": settings.kafka_topic})
    try:
        await asyncio.wait([relaying, asyncio.create_task(stopping.wait())], return_when=asyncio.FIRST_COMPLETED)
    finally:
        await relay.stop()  # the in-flight batch is acknowledged and deleted first
        await asyncio.gather(relaying, return_exceptions=True)
        gauges, flusher = side
        gauges.cancel()
        reporter.counters()  # the last batches are in the final line
        metrics.stop()  # the flusher writes the last partial interval and returns
        await asyncio.gather(gauges, asyncio.wait_for(flusher, 5), return_exceptions=True)
        await engine.dispose()
        log.info("outbox relay process stopped", extra={"published": relay.published_total})


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
