"""Dead-letter replay: moves letters into the database once it takes writes again, faster than live
ingest fills them.

A pass lists every shard of the store at once, fetches letters `fetch_concurrency` at a time (the
next round is fetched while the current one commits), packs whole letters into batches of up to
`batch_readings` readings, commits each batch as ONE multi-row insert through the group committer
(`commits_in_flight` batches at a time), and deletes a batch's letters (one DeleteObjects per 1,000)
only after that commit — in the background, so the next commit does not wait for the delete. Idempotent and safe from several tasks at once without a claim: readings are
keyed by (device_id, tag, timestamp), so a letter two tasks replay concurrently is stored once (the
second insert finds every row present), and deleting a letter another task already deleted is a
no-op; each task starts its pass at a random shard so concurrent passes mostly take different letters.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence

from app.observability import metrics as m
from app.storage.circuit import CircuitBreaker
from app.storage.dead_letter import DeadLetterStore, readings_in, written_at
from app.storage.group_commit import GroupCommitter
from app.storage.repository import ScoredReading

log = logging.getLogger(__name__)

Letter = tuple[str, list[ScoredReading]]


class DeadLetterReplayer:
    def __init__(self, *, store: DeadLetterStore, committer: GroupCommitter, breaker: CircuitBreaker,
                 metrics: m.Metrics, interval_seconds: float, fetch_concurrency: int = 32,
                 batch_readings: int = 5000, commits_in_flight: int = 2, letters_per_round: int = 256,
                 backlog_poll_seconds: float = 1.0) -> None:
        self._store = store
        self._committer = committer
        self._breaker = breaker
        self._metrics = metrics
        self._interval = interval_seconds
        self._fetching = asyncio.Semaphore(fetch_concurrency)
        self._batch_readings = batch_readings
        self._commits_in_flight = commits_in_flight
        self._letters_per_round = letters_per_round
        self._backlog_poll = min(backlog_poll_seconds, interval_seconds)
        self._stopping = asyncio.Event()
        self._deletes: set[asyncio.Task] = set()
        self.backlog_letters = 0

    async def replay_once(self) -> int:
        """One pass over the letters listed now; returns the readings committed."""
        names = spread(await self._store.names())
        self._report_backlog(names)
        rounds = [names[i:i + self._letters_per_round] for i in range(0, len(names), self._letters_per_round)]
        replayed = 0
        prefetch = asyncio.create_task(self._fetch(rounds[0])) if rounds else None
        try:
            for index in range(len(rounds)):
                letters = await prefetch
                prefetch = asyncio.create_task(self._fetch(rounds[index + 1])) if index + 1 < len(rounds) else None
                committed, complete = await self._commit(letters)
                replayed += committed
                if not complete or self._stopping.is_set():
                    break
        finally:
            if prefetch is not None:
                prefetch.cancel()
                await asyncio.gather(prefetch, return_exceptions=True)
            await asyncio.gather(*self._deletes, return_exceptions=True)  # a pass ends with its deletes done
        if replayed:
            log.info("replayed %d dead-lettered readings", replayed)
        return replayed

    def _report_backlog(self, names: Sequence[str]) -> None:
        self.backlog_letters = len(names)
        self._metrics.gauge(m.DEAD_LETTER_BACKLOG, sum(readings_in(name) for name in names))
        self._metrics.gauge(m.DEAD_LETTER_OBJECTS, len(names))
        moments = [moment for moment in map(written_at, names) if moment is not None]
        self._metrics.gauge(m.DEAD_LETTER_OLDEST_AGE, max(0.0, time.time() - min(moments)) if moments else 0.0)

    async def _fetch(self, names: list[str]) -> list[Letter]:
        letters = await asyncio.gather(*(self._fetch_one(name) for name in names))
        return [letter for letter in letters if letter is not None]

    async def _fetch_one(self, name: str) -> Letter | None:
        async with self._fetching:
            try:
                readings = await self._store.get(name)
            except (ValueError, KeyError, TypeError) as error:
                log.error("dead letter %s is unreadable, quarantined: %s", name, error)
                await self._store.quarantine(name, str(error))
                return None
        return None if readings is None else (name, readings)  # None: another task replayed it first

    async def _commit(self, letters: list[Letter]) -> tuple[int, bool]:
        """(readings committed, whether every batch was)."""
        batches = pack(letters, self._batch_readings)
        committed = 0
        for start in range(0, len(batches), self._commits_in_flight):
            outcomes = await asyncio.gather(*(self._commit_batch(batch)
                                              for batch in batches[start:start + self._commits_in_flight]))
            committed += sum(count for count in outcomes if count is not None)
            if None in outcomes:
                return committed, False
        return committed, True

    async def _commit_batch(self, batch: list[Letter]) -> int | None:
        admission = self._breaker.admit()
        if admission is None:
            return None
        readings = [reading for _, letter in batch for reading in letter]
        try:
            await self._committer.submit(readings)
        except Exception as error:
            self._breaker.record_failure()
            log.warning("replay of %d letters failed, will retry: %s", len(batch), error)
            return None
        except BaseException:
            self._breaker.release(admission)
            raise
        self._breaker.record_success()
        # Only after the commit; kept in self._deletes until done.
        deleting = asyncio.create_task(self._delete([name for name, _ in batch]))  # noqa: RUF006
        self._deletes.add(deleting)
        deleting.add_done_callback(self._deletes.discard)
        self._metrics.increment(m.DEAD_LETTERS_REPLAYED, len(readings))
        return len(readings)

    async def _delete(self, names: list[str]) -> None:
        try:
            await self._store.delete_many(names)
        except Exception as error:  # the letters stay and are replayed again: idempotent
            log.warning("could not delete %d replayed letters, they will be replayed again: %s", len(names), error)

    async def run(self) -> None:
        """Pass after pass while letters are replayed; then every `interval_seconds` (every
        `backlog_poll_seconds` while letters wait for the database)."""
        while not self._stopping.is_set():
            replayed = 0
            try:
                replayed = await self.replay_once()
            except Exception:
                log.exception("dead-letter replay pass failed")
            if replayed:
                continue
            try:
                await asyncio.wait_for(self._stopping.wait(),
                                       self._backlog_poll if self.backlog_letters else self._interval)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stopping.set()


def spread(names: list[str]) -> list[str]:
    """The names shard by shard, oldest first within a shard, starting at a random shard."""
    shards: dict[str, list[str]] = {}
    for name in sorted(names):
        shards.setdefault(name.rpartition("/")[0], []).append(name)
    order = sorted(shards)
    if order:
        start = random.randrange(len(order))
        order = order[start:] + order[:start]
    return [name for shard in order for name in shards[shard]]


def pack(letters: list[Letter], batch_readings: int) -> list[list[Letter]]:
    """Whole letters into batches of at most `batch_readings` readings (a bigger letter alone)."""
    batches: list[list[Letter]] = []
    size = 0
    for letter in letters:
        if not batches or size + len(letter[1]) > batch_readings:
            batches.append([])
            size = 0
        batches[-1].append(letter)
        size += len(letter[1])
    return batches
