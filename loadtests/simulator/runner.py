"""The run: replay the spool, then one task per device, with summaries every --report-interval seconds."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TextIO

import httpx

from loadtests.simulator.config import SimulatorConfig
from loadtests.simulator.delivery import (
    Deliverer,
    DeliveryResult,
    FatalDeliveryError,
    Outcome,
    TokenProvider,
    item_count,
    wait_for_event,
)
from loadtests.simulator.generation import (
    Body,
    Device,
    Item,
    device_rng,
    generate_item,
    make_devices,
    tick_offset,
)
from loadtests.simulator.spool import Spool, rejected_path
from loadtests.simulator.stats import Stats

log = logging.getLogger("simulator")


class Simulator:
    def __init__(self, config: SimulatorConfig, stop: asyncio.Event | None = None, out: TextIO = sys.stdout) -> None:
        self.config = config
        self.stop = stop or asyncio.Event()
        self.out = out
        self.stats = Stats()
        self.spool = Spool(config.spool)
        self.rejects = Spool(rejected_path(config.spool))
        self.fatal_error: str | None = None
        self._deliverer: Deliverer | None = None

    async def run(self) -> Stats:
        config = self.config
        print(
            f"simulator: {config.devices} {config.shape} device(s) x {config.rate:g}/s, batch {config.batch_size}, "
            f"anomaly rate {config.anomaly_rate:g} -> {config.url} (seed {config.seed}, spool {config.spool})",
            file=self.out, flush=True,
        )
        timeout = httpx.Timeout(config.request_timeout, connect=min(3.0, config.request_timeout))
        limits = httpx.Limits(max_connections=max(10, config.devices))
        async with httpx.AsyncClient(base_url=config.url, timeout=timeout, limits=limits) as client:
            tokens = TokenProvider(client, config.client_id, config.client_secret)
            self._deliverer = Deliverer(client, tokens, self.stats, self.stop, config)
            reporter = asyncio.create_task(self._report_periodically())
            try:
                await self._replay_spool()
                if not self.stop.is_set():
                    await self._run_devices()
            finally:
                reporter.cancel()
        print(self.stats.line("final"), file=self.out, flush=True)
        if self.fatal_error:
            log.error("stopped: %s", self.fatal_error)
        return self.stats

    async def _replay_spool(self) -> None:
        bodies, malformed = self.spool.read()
        if malformed:
            log.warning("%d unreadable spool line(s) moved to %s", len(malformed), self.rejects.path)
            self._write_rejected_lines(malformed)
            self.spool.replace(bodies)
        if not bodies:
            self.spool.truncate()
            return
        log.info("replaying %d spooled request(s) from %s", len(bodies), self.spool.path)
        for body in bodies:
            if self.stop.is_set():
                return
            if await self._deliver(body, replay=True) is Outcome.UNDELIVERED:
                # Keep every line: those already acknowledged are deduplicated by the service next time.
                log.warning("service still unavailable: keeping the spool for the next start")
                return
        self.spool.truncate()
        log.info("spool replayed and truncated")

    async def _run_devices(self) -> None:
        config = self.config
        devices = make_devices(config.shape, config.devices, config.seed)
        started_monotonic, started_wall = time.monotonic(), datetime.now(UTC)
        async with asyncio.TaskGroup() as group:  # an unexpected error in one device cancels the others
            for device in devices:
                group.create_task(self._run_device(device, started_monotonic, started_wall))

    async def _run_device(self, device: Device, started_monotonic: float, started_wall: datetime) -> None:
        config = self.config
        rng = device_rng(config.seed, device.index)
        pending: list[Item] = []
        tick = 0
        while not self.stop.is_set():
            offset = tick_offset(device.index, tick, config.devices, config.rate)
            # A device that fell behind (rate limited, slow service) drops the ticks it missed at the deadline
            # rather than stretching the run.
            if config.duration is not None and config.duration <= max(offset, time.monotonic() - started_monotonic):
                break
            if await wait_for_event(self.stop, started_monotonic + offset - time.monotonic()):
                break
            # The scheduled moment, not "now": a device that fell behind keeps unique, evenly spaced timestamps.
            item = generate_item(config.shape, rng, device, tick=tick,
                                 timestamp=started_wall + timedelta(seconds=offset), anomaly_rate=config.anomaly_rate)
            tick += 1
            self.stats.anomalies_injected += item.anomaly
            pending.append(item.body)
            if len(pending) >= config.batch_size:
                body, pending = self._body(pending), []
                await self._deliver(body)
        if pending:
            body = self._body(pending)
            if self.stop.is_set():
                self._spool([body])
            else:
                await self._deliver(body)

    def _body(self, items: list[Item]) -> Body:
        return items[0] if self.config.batch_size == 1 else list(items)

    async def _deliver(self, body: Body, *, replay: bool = False) -> Outcome:
        assert self._deliverer is not None
        count = item_count(body)
        self.stats.sent += count
        self.stats.replayed += count if replay else 0
        try:
            result = await self._deliverer.deliver(body)
        except FatalDeliveryError as error:
            if self.fatal_error is None:
                self.fatal_error = str(error)
            self.stop.set()
            result = DeliveryResult(Outcome.UNDELIVERED, detail=str(error))
        if result.outcome is Outcome.DELIVERED:
            self._count_acknowledged(result)
        elif result.outcome is Outcome.REJECTED:
            self.stats.rejected += count
            log.warning("service refused %d item(s), kept in %s: %s", count, self.rejects.path, result.detail)
            self.rejects.append([body])
        elif not replay:  # a replayed body is still in the spool
            log.warning("could not deliver %d item(s), spooled: %s", count, result.detail)
            self._spool([body])
        return result.outcome

    def _count_acknowledged(self, result: DeliveryResult) -> None:
        self.stats.flagged += result.flagged
        for status in result.statuses:
            if status == "duplicate":
                self.stats.duplicates += 1
            else:
                self.stats.accepted += 1
                self.stats.dead_lettered += status == "accepted"

    def _spool(self, bodies: list[Body]) -> None:
        self.spool.append(bodies)
        self.stats.spooled += sum(item_count(body) for body in bodies)

    def _write_rejected_lines(self, lines: list[str]) -> None:
        self.rejects.path.parent.mkdir(parents=True, exist_ok=True)
        with self.rejects.path.open("a", encoding="utf-8") as rejected_file:
            rejected_file.writelines(line + "\n" for line in lines)

    async def _report_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.report_interval)
            print(self.stats.line(), file=self.out, flush=True)
