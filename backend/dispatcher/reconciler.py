"""The reconciler: every unfinished job is either held somewhere or sent again.

A job the store shows unfinished (``created``, ``queued``, ``scheduled``, ``retrying``,
``running``) should be in one of two places: on the STANDARD queue, or in RQ (queued,
in RQ's scheduled registry for its ``run_at`` or a retry, started). It can fall out of
both: Redis restarted without its data, a queue emptied from rq-dashboard, a kernel
that died between recording a job and sending it. Every RECONCILE_INTERVAL seconds one
reconciler (a short Redis lock picks it among the replicas) looks for jobs unchanged
for RECONCILE_AFTER seconds and, for each:

* stopped (cancelled, or void after a failed submit): reports its end, never sends it;
* done, or held by RQ: leaves it;
* otherwise sends its message again, as its next attempt (a scheduled job's message
  carries its ``run_at``: it still starts no earlier than that).

Sending again is safe: the dispatcher's unique enqueue and the worker's ``done``/``stop``
check turn a duplicate into a no-op. To keep duplicates rare it only looks when the
report stream has no old unapplied report (else the store is behind the workers) and
only at jobs last changed before the STANDARD queue was last seen empty (else the
message may simply be waiting its turn).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from backend import markers
from backend.dispatcher.dispatch import drained_key
from backend.dispatcher.pause import pause
from backend.jobs import Job, JobStatus, QueueMessage
from backend.queues import StandardQueue
from backend.reports import REPORT_STREAM, Report, append_report
from backend.rqjobs import job_key, scheduled_key
from backend.settings import Settings
from backend.store.client import DataServiceClient

log = logging.getLogger(__name__)

LEADER_KEY = "taskbroker:reconciler:leader"
RECONCILED_KEY = "taskbroker:job:{}:reconciled"
UNFINISHED = (JobStatus.CREATED, JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.RETRYING,
              JobStatus.RUNNING)
HELD_BY_RQ = {b"queued", b"scheduled", b"started", b"deferred"}
# An RQ job hash left in one of these (say canceled from rq-dashboard) would make the
# dispatcher's unique enqueue of the job a no-op: it is removed before the job is sent.
LEFT_BY_RQ = {b"failed", b"stopped", b"canceled", b"finished"}
PAGE = 200
MAX_PAGES = 10


def message_of(job: Job) -> QueueMessage:
    """The message that runs the job's next attempt."""
    return QueueMessage(job_id=job.id, name=job.name, executor=job.executor, params=job.params,
                        estimated_time=job.estimated_time, attempt=job.attempts + 1,
                        submitted_at=job.created_at, trace_id=uuid.uuid4().hex,
                        run_at=job.run_at, callback=job.callback_url is not None)


def _stream_id_time(entry_id: bytes | str) -> datetime:
    millis = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
    return datetime.fromtimestamp(millis / 1000, UTC)


class Reconciler:
    """Finds unfinished jobs nothing holds, and sends them again."""

    def __init__(self, settings: Settings, connection: aioredis.Redis,
                 client: DataServiceClient, queue: StandardQueue, *, name: str) -> None:
        self.settings = settings
        self.redis = connection
        self.client = client
        self.queue = queue
        self.name = name
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        interval = self.settings.worker.reconcile_interval
        if interval <= 0:
            return
        while not self._stopping.is_set():
            # Jitter keeps replicas started together from trying the lock in lockstep.
            if await pause(self._stopping, interval * random.uniform(0.8, 1.2)):
                return
            try:
                if await self._lead(interval):
                    await self.reconcile_once()
            except Exception as exc:  # down data service, queue or Redis: next round
                log.warning("reconciling skipped: %s", exc)

    async def _lead(self, interval: float) -> bool:
        """Whether this replica reconciles this round (a lock shorter than a round)."""
        return bool(await self.redis.set(LEADER_KEY, self.name, nx=True,
                                         px=max(1000, int(interval * 800))))

    async def _now(self) -> datetime:
        seconds, micros = await self.redis.time()
        return datetime.fromtimestamp(seconds + micros / 1e6, UTC)

    async def _cutoff(self) -> datetime | None:
        """Jobs unchanged since before this may be sent again; None: not now."""
        after = timedelta(seconds=self.settings.worker.reconcile_after)
        now = await self._now()
        oldest = await self.redis.xrange(REPORT_STREAM, "-", "+", count=1)
        if oldest and _stream_id_time(oldest[0][0]) < now - after:
            log.info("reconciling postponed: reports older than %s wait to be recorded",
                     after)
            return None
        drained = await self.redis.get(drained_key(self.queue.name))
        if drained is None:
            return None
        drained_at = datetime.fromtimestamp(int(drained) / 1000, UTC)
        return min(now - after, drained_at - timedelta(seconds=1))

    async def reconcile_once(self) -> int:
        """One pass; returns how many jobs were sent again or ended."""
        cutoff = await self._cutoff()
        if cutoff is None:
            return 0
        age = max(0.0, (await self._now() - cutoff).total_seconds())
        handled = 0
        for status in UNFINISHED:
            for _ in range(MAX_PAGES):
                jobs = await self.client.stale_jobs(status, older_than=age, limit=PAGE)
                handled += await self._reconcile(jobs)
                if len(jobs) < PAGE:
                    break
        if handled:
            log.warning("reconciled %d unfinished jobs that nothing held", handled)
        return handled

    async def _reconcile(self, jobs: list[Job]) -> int:
        if not jobs:
            return 0
        # One snapshot (MULTI): RQ's scheduler moves a due job from the scheduled registry
        # to its queue in one transaction, so the two looks at it agree.
        async with self.redis.pipeline(transaction=True) as pipe:
            for job in jobs:
                pipe.get(markers.stop_key(job.id))
                pipe.exists(markers.done_key(job.id))
                pipe.hget(job_key(job.id), "status")
                pipe.exists(RECONCILED_KEY.format(job.id))
                pipe.zscore(scheduled_key(job.executor), job.id)
            looks = await pipe.execute()
        resend: list[Job] = []
        stale_rq: list[str] = []
        ends: list[Report] = []
        for index, job in enumerate(jobs):
            stop, done, rq_status, recent, due = looks[5 * index:5 * index + 5]
            # A job RQ says is scheduled is held only while the scheduled registry has it.
            lost_schedule = rq_status == b"scheduled" and due is None
            if stop is not None:
                status, error = markers.stopped_as(stop)
                ends.append(Report(job_id=job.id, attempt=max(1, job.attempts),
                                   at=datetime.now(UTC), status=status, error=error,
                                   callback=job.callback_url is not None))
            elif not done and (rq_status not in HELD_BY_RQ or lost_schedule) and not recent:
                resend.append(job)
                if rq_status in LEFT_BY_RQ or lost_schedule:
                    stale_rq.append(job.id)
        if ends:
            async with self.redis.pipeline(transaction=False) as pipe:
                for report in ends:
                    append_report(pipe, report)
                await pipe.execute()
        if stale_rq:
            await self.redis.delete(*(job_key(job_id) for job_id in stale_rq))
        for start in range(0, len(resend), 10):
            batch = resend[start:start + 10]
            await self.queue.send_batch([message_of(job) for job in batch])
            async with self.redis.pipeline(transaction=False) as pipe:
                for job in batch:
                    pipe.set(RECONCILED_KEY.format(job.id), b"1",
                             ex=max(1, int(self.settings.worker.reconcile_after)))
                await pipe.execute()
            for job in batch:
                log.warning("job %s was %s with nothing holding it; sent again as attempt %d",
                            job.id, job.status, job.attempts + 1)
        return len(ends) + len(resend)
