"""ASGI application factory: `uvicorn app.main:app`.

`create_app(settings)` assembles the service; the lifespan starts and stops its background work:
migrations, group-commit writers, the dead-letter replayer, the outbox relay (when a broker is
configured) and the metrics flusher. On SIGTERM `/ready` turns 503 first, in-flight requests
finish, the pending group commit is flushed and the relay stops after its current batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import FastAPI

from app.anomaly import AnomalyDetector
from app.api import auth, dashboard, data, health, ingest
from app.api import metrics as metrics_view
from app.api.openapi_rules import document_validation
from app.container import Services
from app.factory import build_app
from app.observability import metrics as m
from app.observability.gc_tuning import tune_for_serving
from app.observability.loop_lag import watch_event_loop_lag
from app.outbox.relay import OutboxRelay, create_relay
from app.readings import ReadingRules
from app.services.ingest import IngestService
from app.services.queries import QueryService
from app.services.replay import DeadLetterReplayer
from app.settings import Settings, load_settings
from app.state.iam_auth import ElastiCacheIamCredentials
from app.state.ratelimit import SharedRateLimiter
from app.state.store import StateStore
from app.state.windows import SharedWindows
from app.storage import repository
from app.storage.backends import Storage, open_storage
from app.storage.circuit import BreakerState, CircuitBreaker
from app.storage.database import migrate
from app.storage.dead_letter import DeadLetterStore, LocalDeadLetterStore, S3DeadLetterStore
from app.storage.dead_letter_writer import CoalescingDeadLetterWriter
from app.storage.group_commit import GroupCommitter

log = logging.getLogger(__name__)
GAUGE_INTERVAL_SECONDS = 15.0
MIGRATION_RETRY_SECONDS = 5.0
MIGRATION_START_SECONDS = 30.0  # start-up waits this long for the migration, then serves while it finishes
RELAY_STOP_SECONDS = 15.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    application = build_app(
        settings,
        title="Sensor ingestion service",
        summary="Ingests sensor readings and device records, flags rolling z-score anomalies and "
        "serves queries.",
        lifespan=_lifespan,
        # The hot routes first: the router tries routes in order (the lean ones do not wait for it:
        # app/api/lean_route.py's LeanDispatch hands them their requests).
        routers=(ingest.router, health.router, auth.router, data.router, dashboard.router, metrics_view.router),
    )
    services: Services = application.state.services
    services.rules = ReadingRules(
        tag_ranges=settings.tag_ranges,
        max_clock_skew=timedelta(seconds=settings.max_clock_skew_seconds),
        max_age=timedelta(days=settings.max_reading_age_days),
        max_batch=settings.max_batch_readings,
    )
    services.metrics = m.Metrics.from_settings(settings)
    document_validation(application, settings)
    return application


def _dead_letter_store(settings: Settings) -> DeadLetterStore:
    if settings.data_lake_bucket:
        return S3DeadLetterStore(bucket=settings.data_lake_bucket, prefix=settings.dead_letter_prefix,
                                 region=settings.aws_region, endpoint_url=settings.s3_endpoint_url,
                                 shards=settings.dead_letter_shards, concurrency=settings.replay_fetch_concurrency)
    return LocalDeadLetterStore(settings.dead_letter_dir, shards=settings.dead_letter_shards)


def _dead_letter_writer(store: DeadLetterStore, settings: Settings, metrics: m.Metrics) -> CoalescingDeadLetterWriter:
    def on_letter(name: str, readings: int, requests: int) -> None:
        metrics.increment(m.DEAD_LETTERS_WRITTEN)
        # One line per letter (not per request): the fault drills count them.
        log.warning("dead letter written: %s (%d readings from %d requests)", name, readings, requests)

    return CoalescingDeadLetterWriter(store, window_seconds=settings.dead_letter_window_seconds,
                                      max_readings=settings.dead_letter_max_readings, on_letter=on_letter)


@dataclass
class _Runtime:
    """What the lifespan starts and must stop, in order."""

    storage: Storage
    committer: GroupCommitter
    replayer: DeadLetterReplayer
    state_store: StateStore | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)
    relay: OutboxRelay | None = None
    relay_task: asyncio.Task | None = None


def _assemble(services: Services) -> _Runtime:
    """Build the write path (detector, group commit, breaker, dead letters) and the read side."""
    settings, metrics = services.settings, services.metrics
    storage = open_storage(settings)
    breaker = CircuitBreaker(failure_threshold=settings.breaker_failure_threshold,
                             reset_seconds=settings.breaker_reset_seconds)

    def on_commit(rows: int, milliseconds: float) -> None:
        metrics.observe(m.COMMIT_LATENCY, milliseconds)
        metrics.observe(m.COMMIT_BATCH_SIZE, rows)

    committer = GroupCommitter(storage.store_group, max_rows=settings.commit_max_rows, writers=storage.writers,
                               on_commit=on_commit, on_wait=lambda ms: metrics.observe(m.COMMIT_WAIT, ms))
    dead_letters = _dead_letter_store(settings)
    detector = AnomalyDetector(window=settings.zscore_window, threshold=settings.zscore_threshold,
                               min_samples=settings.zscore_min_samples)
    store = _state_store(settings, metrics)
    shared_windows = None
    if store is not None:
        services.shared_limiter = SharedRateLimiter(store, fallback=services.limiter, metrics=metrics)
        shared_windows = SharedWindows(
            store, detector=detector, history=storage.history, ttl_seconds=settings.state_store_window_ttl_seconds,
            history_allowed=lambda: breaker.state is BreakerState.CLOSED, metrics=metrics)
    services.engine = storage.engine
    services.breaker = breaker
    services.queries = QueryService(storage.reads, cache_seconds=settings.query_cache_seconds)
    services.ingest = IngestService(
        detector=detector, committer=committer, dead_letters=_dead_letter_writer(dead_letters, settings, metrics),
        breaker=breaker, history=storage.history,
        metrics=metrics, retry_attempts=settings.db_retry_attempts, retry_base_seconds=settings.db_retry_base_seconds,
        shared_windows=shared_windows,
    )
    replayer = DeadLetterReplayer(store=dead_letters, committer=committer, breaker=breaker, metrics=metrics,
                                  interval_seconds=settings.replay_interval_seconds,
                                  fetch_concurrency=settings.replay_fetch_concurrency,
                                  batch_readings=settings.replay_batch_readings)
    return _Runtime(storage=storage, committer=committer, replayer=replayer, state_store=store)


def _state_store(settings: Settings, metrics: m.Metrics) -> StateStore | None:
    """The shared store's client when SENSOR_STATE_STORE_URL is set (connections open on first use)."""
    if not settings.state_store_url:
        return None
    credentials = None
    if settings.state_store_iam_user:
        credentials = ElastiCacheIamCredentials(user_id=settings.state_store_iam_user,
                                                cache_name=settings.state_store_cache_name or "",
                                                region=settings.aws_region)
    return StateStore.from_url(settings.state_store_url, timeout=settings.state_store_timeout_seconds,
                               retry_seconds=settings.state_store_retry_seconds, metrics=metrics,
                               credential_provider=credentials)


@asynccontextmanager
async def _lifespan(application: FastAPI) -> AsyncIterator[None]:
    services: Services = application.state.services
    settings, metrics = services.settings, services.metrics
    runtime = _assemble(services)
    engine = runtime.storage.engine
    migrated = await _migrate_or_retry_later(engine, runtime.tasks)
    if runtime.state_store is not None:
        await runtime.state_store.load_scripts()  # a store that is down now is retried on use
    runtime.committer.start()
    runtime.tasks.append(asyncio.create_task(runtime.replayer.run(), name="dead-letter-replayer"))
    if settings.kafka_enabled and settings.relay_in_process:
        runtime.relay = await create_relay(engine, settings)
        runtime.relay_task = asyncio.create_task(_run_relay(runtime.relay, migrated), name="outbox-relay")
    runtime.tasks.append(asyncio.create_task(
        _gauges(engine, services.breaker, runtime.relay, metrics), name="gauges"))
    runtime.tasks.append(asyncio.create_task(metrics.run_flusher(settings.metrics_flush_seconds), name="metrics"))
    runtime.tasks.append(asyncio.create_task(
        services.route_metrics.run_flusher(settings.metrics_flush_seconds), name="route-metrics"))
    runtime.tasks.append(asyncio.create_task(watch_event_loop_lag(metrics), name="event-loop-lag"))

    _drain_on_sigterm(services)
    restore_gc = tune_for_serving()
    services.started = True
    services.accepting = True
    log.info("ingestion service started",
             extra={"database": engine.dialect.name, "kafka": settings.kafka_enabled,
                    "state_store": runtime.state_store is not None})
    try:
        yield
    finally:
        services.accepting = False
        await dashboard.stop_live_feed(services)
        await _shut_down(runtime)
        restore_gc()
        log.info("ingestion service stopped")


async def _shut_down(runtime: _Runtime) -> None:
    """Stop taking dead letters, flush the pending group commit, let the relay finish its batch."""
    runtime.replayer.stop()
    await runtime.committer.close()
    if runtime.relay is not None and runtime.relay_task is not None:
        # Finishes the in-flight batch (bounded by the producer's request timeout).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runtime.relay.stop(), RELAY_STOP_SECONDS)
        runtime.relay_task.cancel()
        await asyncio.gather(runtime.relay_task, return_exceptions=True)
    for task in runtime.tasks:
        task.cancel()
    await asyncio.gather(*runtime.tasks, return_exceptions=True)
    await runtime.storage.close()
    if runtime.state_store is not None:
        await runtime.state_store.close()


async def _migrate_or_retry_later(engine, tasks: list[asyncio.Task], *,
                                  wait_seconds: float = MIGRATION_START_SECONDS) -> asyncio.Event:
    """Migrate now. A migration still running after `wait_seconds` (e.g. an index built CONCURRENTLY on a
    large table) carries on in the background while the service starts, instead of being cancelled and
    started over; one that fails because the database is down is retried in the background (readings go
    to the dead-letter store meanwhile). The returned event is set once the schema is current."""
    migrated = asyncio.Event()

    async def finish_in_background(running: asyncio.Future | None) -> None:
        while True:
            try:
                await (running if running is not None else migrate(engine))
            except Exception as error:
                log.warning("database migration failed, retrying in %ss: %s", MIGRATION_RETRY_SECONDS, error)
                running = None
                await asyncio.sleep(MIGRATION_RETRY_SECONDS)
                continue
            log.info("database schema is current")
            migrated.set()
            return

    first = asyncio.ensure_future(migrate(engine))
    try:
        await asyncio.wait_for(asyncio.shield(first), wait_seconds)
    except TimeoutError:
        log.warning("database migration still running after %ss: serving meanwhile, it finishes in the background",
                    wait_seconds)
        tasks.append(asyncio.create_task(finish_in_background(first), name="migrations"))
    except Exception as error:
        log.error("database unavailable at start-up; accepting into the dead-letter store: %s", error)
        tasks.append(asyncio.create_task(finish_in_background(None), name="migrations"))
    else:
        migrated.set()
    return migrated


async def _run_relay(relay: OutboxRelay, migrated: asyncio.Event) -> None:
    """The relay starts its producer itself and retries while the broker is unreachable."""
    await migrated.wait()
    await relay.run()


async def _gauges(engine, breaker: CircuitBreaker, relay: OutboxRelay | None, metrics: m.Metrics) -> None:
    published = failures = 0
    while True:
        metrics.gauge(m.DB_CIRCUIT_OPEN, 0 if breaker.state is BreakerState.CLOSED else 1)
        with contextlib.suppress(Exception):
            pending, oldest_age = await repository.outbox_backlog(engine)
            metrics.gauge(m.OUTBOX_PENDING, pending)
            metrics.gauge(m.OUTBOX_OLDEST_AGE, oldest_age)
        if relay is not None:
            metrics.increment(m.RELAY_PUBLISHED, relay.published_total - published)
            metrics.increment(m.RELAY_FAILURES, relay.failures_total - failures)
            published, failures = relay.published_total, relay.failures_total
        await asyncio.sleep(GAUGE_INTERVAL_SECONDS)


def _drain_on_sigterm(services: Services) -> None:
    """Turn /ready to 503 as soon as SIGTERM arrives, then let uvicorn's own handler run."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame) -> None:
        services.accepting = False
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


app = create_app()
