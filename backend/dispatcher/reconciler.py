"""The reconciler: every unfinished job is either held somewhere or sent again.

A job the store shows unfinished (``created``, ``queued``, ``scheduled``, ``retrying``,
``running``) should be in one of two places: on the STANDARD queue, or in RQ (queued,
in RQ's scheduled registry for its ``run_at`` or a retry, started). It can fall out of
both: Redis restarted without its data, a queue emptied from rq-dashboard, a kernel
that died between recording a job and sending it, a worker that took a job off its RQ
queue (with the end of the job before) and died or lost Redis before it started it or
put it back (RQ's job hash still says ``queued``, but no RQ queue lists it). Every
RECONCILE_INTERVAL seconds one reconciler (a short Redis lock picks it among the
replicas) looks for jobs unchanged for RECONCILE_AFTER seconds and, for each:

* stopped (cancelled, or void after a failed submit): reports its end, never sends it;
* done, or held by RQ: leaves it (``queued`` only while its RQ queue, or RQ's
  intermediate list of it, lists it, or did a round before: a worker that took the job
  starts it within milliseconds; ``scheduled`` only while the scheduled registry has it);
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
import math
import random
import uuid
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job as RQJob

from backend import markers
from backend.dispatcher.dispatch import drained_key
from backend.dispatcher.pause import pause
from backend.jobs import Job, JobStatus, QueueMessage
from backend.queues import StandardQueue
from backend.reports import REPORT_STREAM, Report, append_report
from backend.rqjobs import job_key, queue_key, scheduled_key
from backend.settings import Settings
from backend.store.client import DataServiceClient

log = logging.getLogger(__name__)

LEADER_KEY = "taskbroker:reconciler:leader"
RECONCILED_KEY = "taskbroker:job:{}:reconciled"
# A job a worker has taken but not started yet looks unlisted too, for a few milliseconds:
# one found unlisted is noted here, and only one found so again a round later is lost.
UNLISTED_KEY = "taskbroker:job:{}:unlisted"
UNFINISHED = (JobStatus.CREATED, JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.RETRYING,
              JobStatus.RUNNING)
HELD_BY_RQ = {b"queued", b"scheduled", b"started", b"deferred"}
# An RQ job hash left in one of these (say canceled from rq-dashboard) would make the
# dispatcher's unique enqueue of the job a no-op: it is removed before the job is sent.
LEFT_BY_RQ = {b"failed", b"stopped", b"canceled", b"finished"}
PAGE = 200
MAX_PAGES = 10
# Which of ARGV[2..] RQ's job hash (prefix ARGV[1]) says are queued while none of KEYS
# (an RQ queue and its intermediate list) lists them, in one atomic look. Each list is
# read once, in slices, and only until every job looked for has been found: a long RQ
# backlog costs one read of it per pass, and only when jobs in it went stale.
_UNLISTED = """
local wanted, left = {}, 0
for i = 2, #ARGV do
  if redis.call('hget', ARGV[1] .. ARGV[i], 'status') == 'queued' then
    wanted[ARGV[i]] = true
    left = left + 1
  end
end
for _, key in ipairs(KEYS) do
  local start, length = 0, redis.call('llen', key)
  while left > 0 and start < length do
    for _, id in ipairs(redis.call('lrange', key, start, start + 999)) do
      if wanted[id] then
        wanted[id] = nil
        left = left - 1
      end
    end
    start = start + 1000
  end
end
local unlisted = {}
for id in pairs(wanted) do unlisted[#unlisted + 1] = id end
return unlisted
"""


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
        self._round = ""  # this pass, as noted on the jobs it found unlisted
        self._looked: set[str] = set()  # jobs whose RQ queue this pass looked at

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
        self._round, self._looked = uuid.uuid4().hex, set()
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
        seen = [looks[5 * index:5 * index + 5] for index in range(len(jobs))]
        unlisted = await self._unlisted_twice([
            job for job, (stop, done, rq_status, recent, _) in zip(jobs, seen, strict=True)
            if stop is None and not done and rq_status == b"queued" and not recent
            and job.id not in self._looked])
        for job, (stop, done, rq_status, recent, due) in zip(jobs, seen, strict=True):
            # A job RQ says is scheduled is held only while the scheduled registry has it,
            # one RQ says is queued only while its queue lists it.
            lost = (rq_status == b"scheduled" and due is None) or job.id in unlisted
            if stop is not None:
                status, error = markers.stopped_as(stop)
                ends.append(Report(job_id=job.id, attempt=max(1, job.attempts),
                                   at=datetime.now(UTC), status=status, error=error,
                                   callback=job.callback_url is not None))
            elif not done and (rq_status not in HELD_BY_RQ or lost) and not recent:
                resend.append(job)
                if rq_status in LEFT_BY_RQ or lost:
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

    async def _unlisted_twice(self, jobs: list[Job]) -> set[str]:
        """The ids of ``jobs`` that :meth:`_unlisted` finds now and found in an earlier
        round (a worker that took one starts it within milliseconds, or puts it back)."""
        self._looked.update(job.id for job in jobs)
        unlisted = sorted(await self._unlisted(jobs))
        if not unlisted:
            return set()
        keep = max(2, math.ceil(3 * self.settings.worker.reconcile_interval))
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in unlisted:
                pipe.get(UNLISTED_KEY.format(job_id))
                pipe.set(UNLISTED_KEY.format(job_id), self._round, nx=True, ex=keep)
            noted = (await pipe.execute())[::2]
        return {job_id for job_id, before in zip(unlisted, noted, strict=True)
                if before is not None and before.decode() != self._round}

    async def _unlisted(self, jobs: list[Job]) -> set[str]:
        """The ids of ``jobs`` whose RQ job hash says ``queued`` while their RQ queue does
        not list them (a worker took them and died, or lost Redis, before it started them
        or put them back): nothing would ever run them."""
        by_executor: dict[str, list[str]] = {}
        for job in jobs:
            by_executor.setdefault(job.executor, []).append(job.id)
        unlisted: set[str] = set()
        for executor, ids in by_executor.items():
            key = queue_key(executor)
            found = await self.redis.eval(  # type: ignore[misc]
                _UNLISTED, 2, key, IntermediateQueue.get_intermediate_queue_key(key),
                RQJob.redis_job_namespace_prefix, *ids)
            unlisted.update(i.decode() if isinstance(i, bytes) else i for i in found)
        return unlisted
