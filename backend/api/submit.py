"""Submitting jobs: one outcome per submit, one data service call per batch of submits.

A submit picks the job's id itself, then (for a whole batch of concurrent submits at
once, see :class:`Submitter`) records the jobs as ``queued`` with one data service call,
sends their messages with one queue call, and answers 200. A kernel that dies between
the two leaves jobs that are recorded but not sent: the reconciler sends them.

Every 503 names the job, and that job never runs:

* the record call failed: the job may or may not have been written (a timeout can hide
  a write), so it is made *void*: its ``stop`` marker is set in Redis (a worker that
  ever meets it does not run it; the reconciler never sends it) and a ``failed`` report
  is appended, which the recorder applies once the store answers again;
* the send failed: the job is recorded but maybe not on the queue (or maybe it is: a
  timeout again); it is made void the same way.

So a client that retries after a 503 runs the work once.

The store refuses a whole bulk for one job it cannot hold (a 4xx naming ``jobs[i]``). The
kernel checks each job before it joins a batch (backend/storable.py, the store's own
check); should one still be refused, only its submit gets the 4xx (its fields named as
the submit's) and the batch is sent again without it: one user's bad job never fails
another user's submit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
import msgspec
import redis.asyncio as aioredis
from bson import ObjectId
from redis.exceptions import RedisError

from backend import markers, metrics, tracing
from backend.errors import (
    DataServiceError,
    DataServiceRefusedError,
    MessageTooLargeError,
    OverloadedError,
    QueueError,
    SubmitError,
    TaskbrokerError,
)
from backend.jobs import JobExecutionRequest, JobStatus, NewJob, QueueMessage
from backend.logs import job_fields
from backend.problems import FieldError
from backend.queues import MAX_MESSAGE_BYTES, StandardQueue
from backend.reports import Report, append_report
from backend.rqjobs import queue_key
from backend.settings import Settings
from backend.store.client import DataServiceClient

log = logging.getLogger(__name__)

# A send that hangs is a refusal: the client gets its answer and the job is void.
SEND_TIMEOUT = 30.0
BACKLOG_TTL = 0.5  # seconds a measured backlog is trusted
VOID_RETRY_FOR = 600.0  # seconds a void marker Redis refused is tried again


_JOB_INDEX = re.compile(r"^jobs\[(\d+)\]")


def _offset(groups: list[list[_Pending]], group: list[_Pending]) -> int:
    """Where ``group``'s first job is in the bulk the groups make."""
    start = 0
    for other in groups:
        if other is group:
            return start
        start += len(other)
    raise ValueError("group not in groups")


def _refused_group(groups: list[list[_Pending]],
                   exc: DataServiceRefusedError) -> list[_Pending] | None:
    """The group holding the job a bulk refusal names (its ``errors``: ``jobs[i]...``)."""
    for problem in exc.errors:
        match = _JOB_INDEX.match(problem.field)
        if match is None:
            continue
        index = int(match.group(1))
        for group in groups:
            if index < len(group):
                return group
            index -= len(group)
    return None


def _as_submit(exc: DataServiceRefusedError, start: int, size: int, position: int,
               job_id: str) -> DataServiceRefusedError:
    """The store's refusal of ``jobs[start + i]`` as the submit's own: ``params``, not
    ``jobs[17].params`` (``jobs[i]`` of the batch request, for one of several jobs)."""
    def own(text: str) -> str:
        def name(match: re.Match[str]) -> str:
            index = int(match.group(1)) - start
            if not 0 <= index < size:
                return "another job"
            if size > 1:
                return f"jobs[{index}]{match.group(2)}"
            return "" if match.group(2) else "job"
        return re.sub(r"jobs\[(\d+)\](\.?)", name, text)

    errors = [FieldError(field=own(problem.field) or "body", message=own(problem.message),
                         in_=problem.in_) for problem in exc.errors]
    return DataServiceRefusedError(own(str(exc)), exc.status_code,
                                   errors or [FieldError(field="body", message=own(str(exc)))],
                                   exc.limit_bytes)


def new_job_id() -> str:
    """A fresh job id (a MongoDB ObjectId), chosen by the kernel before anything is written."""
    return str(ObjectId())


def queue_message(job_id: str, request: JobExecutionRequest, executor: str,
                  trace_id: str, *, run_at: datetime | None = None,
                  callback: bool = False) -> QueueMessage:
    # With tracing on, the job's trace is the submit request's (its W3C ids).
    traced = tracing.current_trace()
    trace_id, traceparent = traced if traced is not None else (trace_id, "")
    return QueueMessage(job_id=job_id, name=request.job_name, executor=executor,
                        params=request.params, estimated_time=request.estimated_time,
                        trace_id=trace_id, traceparent=traceparent, run_at=run_at,
                        callback=callback)


def check_message_size(message: QueueMessage) -> None:
    """Refuse an oversized message before anything is recorded."""
    size = len(msgspec.json.encode(message))
    if size > MAX_MESSAGE_BYTES:
        raise MessageTooLargeError(
            f"params too large: the job's queue message would be {size} bytes; "
            f"the limit is {MAX_MESSAGE_BYTES} bytes"
        )


@dataclass
class _Pending:
    job: NewJob
    message: QueueMessage
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop()
                                       .create_future())


class Backlog:
    """How much work waits, measured at most every BACKLOG_TTL seconds (admission control)."""

    def __init__(self, queue: StandardQueue, connection: aioredis.Redis, limit: int) -> None:
        self.queue = queue
        self.redis = connection
        self.limit = limit
        self._measured = float("-inf")
        self._standard = 0
        self._rq: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def _measure(self, executor: str) -> None:
        async with self._lock:
            if time.monotonic() - self._measured < BACKLOG_TTL and executor in self._rq:
                return
            standard = await self.queue.depth()
            self._rq[executor] = int(await self.redis.llen(queue_key(executor)))
            self._standard, self._measured = standard, time.monotonic()

    async def admit(self, executor: str) -> None:
        """Raise :class:`OverloadedError` when the STANDARD queue or the executor's RQ
        queue holds more than MAX_BACKLOG jobs. A backlog that cannot be measured admits."""
        try:
            await self._measure(executor)
        except (QueueError, RedisError) as exc:
            log.debug("backlog not measured: %s", exc)
            return
        waiting = max(self._standard, self._rq.get(executor, 0))
        if waiting > self.limit:
            excess = waiting - self.limit
            retry_after = 1 + min(29, math.ceil(30 * excess / self.limit))
            raise OverloadedError(f"{waiting} jobs are waiting, over the limit of "
                                  f"{self.limit} (MAX_BACKLOG); try again in {retry_after} s",
                                  retry_after)


class Submitter:
    """Records and queues concurrent submits together (group commit).

    While one batch is being written, new submits gather; the next batch takes them all
    (up to SUBMIT_BATCH_MAX). A lone submit goes at once: batching adds no wait. The jobs
    of one batch request (:meth:`submit_many`) always go together, in one data service
    call, even beyond SUBMIT_BATCH_MAX.
    """

    def __init__(self, client: DataServiceClient, queue: StandardQueue,
                 connection: aioredis.Redis, settings: Settings) -> None:
        self.client = client
        self.queue = queue
        self.redis = connection
        self.settings = settings
        self.max_batch = settings.api.submit_batch_max
        self._pending: list[list[_Pending]] = []  # groups that go in one batch, in order
        self._flusher: asyncio.Task[None] | None = None
        self._voids: set[asyncio.Task[None]] = set()

    async def submit(self, job: NewJob, message: QueueMessage) -> None:
        """Record and queue one job; raises :class:`SubmitError` (the job is void)."""
        await self.submit_many([(job, message)])

    async def submit_many(self, jobs: list[tuple[NewJob, QueueMessage]]) -> None:
        """Record and queue jobs together (one data service call, the queue's batch send);
        raises :class:`SubmitError` if they could not be (then every one of them is void)."""
        group = [_Pending(job, message) for job, message in jobs]
        if not group:
            return
        self._pending.append(group)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all())
        await asyncio.shield(asyncio.gather(*(pending.done for pending in group)))

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        for task in list(self._voids):
            task.cancel()

    async def _flush_all(self) -> None:
        while self._pending:
            groups: list[list[_Pending]] = []
            size = 0
            while self._pending and (not groups or
                                     size + len(self._pending[0]) <= self.max_batch):
                groups.append(self._pending.pop(0))
                size += len(groups[-1])
            try:
                await self._flush(groups)
            except Exception:  # a bug must not leave submits waiting forever
                log.exception("submit batch failed")
                self._fail([pending for group in groups for pending in group],
                           "the job could not be submitted (an internal error, logged)")

    async def _record(self, groups: list[list[_Pending]]) -> list[list[_Pending]]:
        """Record the groups' jobs with one data service call; the groups recorded.

        The store refuses a whole bulk for one job it cannot hold (a 4xx naming
        ``jobs[i]``). That job's group (one submit) alone gets the refusal, and the others
        are sent again: one user's bad job never fails another's submit."""
        while groups:
            try:
                await self.client.create_jobs([p.job for group in groups for p in group])
                return groups
            except DataServiceRefusedError as exc:
                refused = _refused_group(groups, exc)
                if refused is None and len(groups) > 1:
                    # The store did not say which job: each group on its own call.
                    return [group for group in groups if await self._record([group])]
                refused = refused or groups[0]
                await self._refuse(refused, groups, exc)
                groups = [group for group in groups if group is not refused]
        return groups

    async def _refuse(self, group: list[_Pending], groups: list[list[_Pending]],
                      exc: DataServiceRefusedError) -> None:
        """Answer one submit with the store's refusal, its fields named as the submit's.
        Its jobs are made void too: a refused bulk writes nothing, but never run is sure."""
        start = _offset(groups, group)
        log.warning("the job store refused job %s of %s: %s", group[0].job.id,
                    group[0].job.user_id, exc)
        await self._void(group, f"the job store refused it: {exc}", answered=exc.status_code)
        for position, pending in enumerate(group):
            if not pending.done.done():
                pending.done.set_exception(_as_submit(exc, start, len(group), position,
                                                      pending.job.id))

    async def _flush(self, groups: list[list[_Pending]]) -> None:
        try:
            groups = await self._record(groups)
        except DataServiceError as exc:
            batch = [p for group in groups for p in group if not p.done.done()]
            log.warning("recording %d jobs failed: %s", len(batch), exc)
            await self._void(batch, "the job store did not record it in time")
            self._fail(batch, "the job store (data service) is unavailable: the job was "
                              "not recorded, or is marked failed, and will never run")
            return
        batch = [pending for group in groups for pending in group]
        if not batch:
            return
        try:
            with anyio.fail_after(SEND_TIMEOUT):
                await self.queue.send_many([pending.message for pending in batch])
        except Exception as exc:  # whatever the backend raised: not known to be queued
            log.warning("queueing %d jobs failed: %s", len(batch), exc)
            too_large = isinstance(exc, MessageTooLargeError)
            await self._void(batch, "the queue refused it" + (": too large" if too_large
                                                               else ""), recorded=True)
            self._fail(batch, "the job queue is unavailable: the job is marked failed and "
                              "will never run")
            return
        for pending in batch:
            message = pending.message
            if metrics.enabled():
                metrics.JOBS_SUBMITTED.labels(message.name, message.executor).inc()
            log.info("job %s (%s) recorded and queued for executor %s", message.job_id,
                     message.name, message.executor,
                     extra=job_fields(message.job_id, message.trace_id))
            if not pending.done.done():
                pending.done.set_result(None)

    def _fail(self, batch: list[_Pending], reason: str) -> None:
        for pending in batch:
            if not pending.done.done():
                job_id = pending.job.id
                pending.done.set_exception(SubmitError(f"job {job_id}: {reason}", job_id))

    async def _void(self, batch: list[_Pending], reason: str, *, recorded: bool = False,
                    answered: int = 503) -> None:
        """Make the jobs never run: stop markers, then a ``failed`` report each (applied
        at once too when the jobs are known to be recorded and the store answers)."""
        why = f"submit failed: {reason} (the client was answered {answered})"
        reports = [Report(job_id=p.job.id, attempt=0, at=datetime.now(UTC),
                          status=JobStatus.FAILED, error=why, callback=p.message.callback)
                   for p in batch]
        if recorded:
            try:
                await self.client.apply_reports(reports)
            except TaskbrokerError as exc:
                log.warning("could not mark %d void jobs failed yet: %s", len(reports), exc)
        try:
            await self._write_voids(reports, why)
        except RedisError as exc:
            log.error("Redis refused the void markers of %d jobs (%s); trying again in "
                      "the background", len(reports), exc)
            task = asyncio.create_task(self._retry_voids(reports, why))
            self._voids.add(task)
            task.add_done_callback(self._voids.discard)

    async def _write_voids(self, reports: list[Report], why: str) -> None:
        # Past the furthest a job may be scheduled: a void scheduled job stays refused.
        ttl = self.settings.worker.done_ttl + math.ceil(self.settings.api.max_schedule_ahead)
        async with self.redis.pipeline(transaction=False) as pipe:
            for report in reports:
                pipe.set(markers.stop_key(report.job_id), markers.void_reason(why), ex=ttl)
                append_report(pipe, report)
            await pipe.execute()

    async def _retry_voids(self, reports: list[Report], why: str) -> None:
        deadline = time.monotonic() + VOID_RETRY_FOR
        delay = 0.5
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            try:
                await self._write_voids(reports, why)
                return
            except RedisError:
                delay = min(10.0, delay * 2)
        log.error("jobs %s could not be made void; if they were recorded, the reconciler "
                  "may run them", ", ".join(r.job_id for r in reports))
