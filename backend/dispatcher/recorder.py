"""The recorder: worker reports from the report stream to the data service, in batches.

Workers append their reports to the Redis Stream ``REPORT_STREAM`` and never wait
(:mod:`backend.workers.report_writer`). Recorders read it through the consumer group
``RECORDER_GROUP`` (any number of replicas; each entry goes to one of them), apply a
batch with one ``POST /reports`` (one ``bulk_write`` in the store), put the dead letters
of jobs that failed for good on the dead-letter queue, and only then ack and delete the
entries. So a data service or queue that is down delays reports, never loses them:
the batch is tried again, and entries a recorder held when it died are claimed by
another after ``RECLAIM_IDLE`` seconds. Applying a batch twice is harmless (every write
is conditional, see :mod:`backend.reports`). Jobs with a callback URL that a batch
finished get their webhook scheduled (:mod:`backend.webhook_signing`) before the ack as well.

A report travels as the stream holds it: the batch is joined into the request body,
not decoded and encoded again; only a report with a dead letter is decoded here. The
ack of one batch rides with the read of the next (one round trip per batch).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from backend import webhook_signing
from backend.dispatcher.pause import pause
from backend.dispatcher.tally import note_dead_letter, note_finished
from backend.errors import DataServiceRefusedError, TaskbrokerError
from backend.queues import StandardQueue
from backend.reports import RECORDER_GROUP, REPORT_FIELD, REPORT_STREAM, decode_report
from backend.store.client import DataServiceClient

log = logging.getLogger(__name__)

RECLAIM_IDLE = 15.0  # seconds an entry may sit with a consumer before another takes it
READ_BLOCK_MS = 1000
MAX_BATCH_BYTES = 768 * 1024  # one POST /reports stays under the store's body limit
FIRST_BACKOFF, MAX_BACKOFF = 0.2, 5.0
DRAIN_SECONDS = 5.0
_DEAD_LETTER = b'"dead_letter"'

Entry = tuple[bytes, bytes]  # stream entry id, and the report as JSON


def consumer_name() -> str:
    """Unique per process start (hostname and pid repeat across container restarts)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def chunks(reports: list[bytes], max_count: int, max_bytes: int) -> list[list[bytes]]:
    """Split ``reports`` (in order) into runs of at most ``max_count`` and ``max_bytes``."""
    runs: list[list[bytes]] = [[]]
    size = 0
    for report in reports:
        if runs[-1] and (len(runs[-1]) >= max_count or size + len(report) > max_bytes):
            runs.append([])
            size = 0
        runs[-1].append(report)
        size += len(report) + 1
    return [run for run in runs if run]


class Recorder:
    """One consumer of the report stream."""

    def __init__(self, connection: Redis, client: DataServiceClient, queue: StandardQueue,
                 *, batch: int = 500, consumer: str | None = None,
                 reclaim_idle: float = RECLAIM_IDLE, linger: float = 0.0) -> None:
        self.redis = connection
        self.client = client
        self.queue = queue
        self.batch = batch
        self.consumer = consumer or consumer_name()
        self.reclaim_idle = reclaim_idle
        self.linger = linger  # seconds to wait after a partial batch (BATCH_LINGER)
        self._stopping = asyncio.Event()
        self._group_ready = False
        self._claim_cursor: bytes | str = "0-0"
        self._next_claim = 0.0
        self._to_ack: list[bytes] = []  # settled entries, acked with the next read
        self.recorded = 0  # reports applied by this recorder (for logs and tests)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Record until :meth:`stop`; a batch read is always finished first, and what the
        workers reported before the stop is recorded too (for up to DRAIN_SECONDS)."""
        log.info("recording reports from %s as %s", REPORT_STREAM, self.consumer)
        backoff = FIRST_BACKOFF
        while not self._stopping.is_set():
            try:
                recorded = await self.record_once(block_ms=READ_BLOCK_MS)
                backoff = FIRST_BACKOFF
                if 0 < recorded < self.batch and self.linger:
                    # Reports trickle in: let a few gather, so that the next data service
                    # call applies several (an idle stream is still read at once).
                    await asyncio.sleep(self.linger)
            except (RedisError, TaskbrokerError) as exc:
                log.warning("recording failed (%s); trying again in %.1f s", exc, backoff)
                await pause(self._stopping, backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
        deadline = time.monotonic() + DRAIN_SECONDS
        try:
            while time.monotonic() < deadline:
                if not await self.record_once():
                    break
            await self.flush_acks()
        except (RedisError, TaskbrokerError) as exc:
            log.warning("reports left for the next start: %s", exc)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(REPORT_STREAM, RECORDER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def record_once(self, block_ms: int | None = None) -> int:
        """Read one batch (entries idle with a dead recorder first) and record it; returns
        how many entries were settled. Raises if Redis, the data service or the
        dead-letter queue failed: the entries stay pending and are tried again."""
        await self._ensure_group()
        try:
            entries = await self._claim() or await self._read(block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False  # the stream was deleted under us: start over
            self._to_ack = []
            return 0
        if not entries:
            return 0
        await self._settle(entries)
        return len(entries)

    async def _claim(self) -> list[Entry]:
        if time.monotonic() < self._next_claim:
            return []
        self._next_claim = time.monotonic() + max(0.05, self.reclaim_idle / 3)
        reply = await self.redis.xautoclaim(REPORT_STREAM, RECORDER_GROUP, self.consumer,
                                            int(self.reclaim_idle * 1000),
                                            start_id=self._claim_cursor, count=self.batch)
        self._claim_cursor = reply[0]
        claimed = [(entry_id, fields.get(REPORT_FIELD, b"")) for entry_id, fields in reply[1]
                   if entry_id is not None and fields is not None]
        if claimed:
            log.info("took over %d reports another recorder left", len(claimed))
        return claimed

    async def _read(self, block_ms: int | None) -> list[Entry]:
        async with self.redis.pipeline(transaction=False) as pipe:
            if self._to_ack:
                pipe.xack(REPORT_STREAM, RECORDER_GROUP, *self._to_ack)
                pipe.xdel(REPORT_STREAM, *self._to_ack)
            pipe.xreadgroup(RECORDER_GROUP, self.consumer, {REPORT_STREAM: ">"},
                            count=self.batch, block=block_ms)
            replies = await pipe.execute()
        self._to_ack = []
        entries: list[Entry] = []
        for _stream, items in replies[-1] or []:
            entries += [(entry_id, fields.get(REPORT_FIELD, b"")) for entry_id, fields in items]
        return entries

    async def flush_acks(self) -> None:
        if self._to_ack:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xack(REPORT_STREAM, RECORDER_GROUP, *self._to_ack)
                pipe.xdel(REPORT_STREAM, *self._to_ack)
                await pipe.execute()
            self._to_ack = []

    async def _settle(self, entries: list[Entry]) -> None:
        reports = [raw for _, raw in entries]
        for run in chunks(reports, self.batch, MAX_BATCH_BYTES):
            await self._apply(run)
        for raw in reports:
            if _DEAD_LETTER in raw:
                try:
                    report = decode_report(raw)
                except (msgspec.DecodeError, UnicodeDecodeError):
                    continue  # already refused and logged by _apply
                if report.dead_letter is not None:
                    await self.queue.send_dead_letter(report.dead_letter,
                                                      report.error or "failed")
                    note_dead_letter(report)
        await note_finished(self.redis, reports)
        self._to_ack += [entry_id for entry_id, _ in entries]
        self.recorded += len(reports)

    async def _apply(self, reports: list[bytes]) -> None:
        try:
            answer = await self.client.apply_encoded_reports(reports)
        except DataServiceRefusedError as exc:
            # A report the store cannot take at all (not a lost one: it would refuse it
            # forever). Find it by halving, apply the rest, log what is dropped.
            if len(reports) == 1:
                log.error("dropping an unreadable report the data service refuses (%s): %r",
                          exc, reports[0][:300])
                return
            middle = len(reports) // 2
            await self._apply(reports[:middle])
            await self._apply(reports[middle:])
            return
        for problem in answer.refused:
            log.warning("report not stored as sent: %s", problem)
        if answer.finished:
            # Before the entries are acked: a recorder that dies here applies them again.
            await webhook_signing.schedule(self.redis, answer.finished)
