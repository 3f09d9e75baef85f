"""Putting one job into its executor's RQ queue, exactly once per job id.

The RQ job id *is* the job id, and RQ's ``unique`` enqueue checks and creates the job
hash in one Lua script, so a redelivered queue message (or a second dispatcher racing
the first) enqueues nothing twice while RQ holds that job. After RQ has forgotten a
finished job (``RQ_RESULT_TTL``), its ``done`` marker (:mod:`backend.markers`) keeps a
late duplicate from running it again.

The RQ job runs :data:`RUN_JOB` with the job id and the queue message (JSON), so the
worker knows the task, its params and its estimate without asking the data service.
RQ stores it with its JSON serializer, never pickle: a worker never unpickles what
someone wrote into Redis (and refuses any function but :data:`RUN_JOB`).
Its meta carries the number of the attempt its next run is (``attempt``): the
message's (1 from a submit), one more for each retry the worker schedules, one more
when the reaper puts a lost attempt back.

A message whose ``run_at`` is still ahead (a scheduled job) goes into RQ's scheduled
registry instead of the queue, by the same unique check (RQ's
``UNIQUE_SCHEDULE_SCRIPT``); the worker executor's scheduler moves it to the queue when
it is due (:mod:`backend.workers.scheduler`).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import redis
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.registry import ScheduledJobRegistry
from rq.scripts import UNIQUE_ENQUEUE_SCRIPT, UNIQUE_SCHEDULE_SCRIPT, _build_hset_args
from rq.serializers import JSONSerializer

from backend.jobs import QueueMessage
from backend.settings import WorkerSettings

RUN_JOB = "backend.workers.runner.run_job"
ATTEMPT = "attempt"  # RQ job meta: the number of the attempt its next run is

_decoder = msgspec.json.Decoder(QueueMessage)


def job_timeout(estimated_time: float | None, settings: WorkerSettings) -> int:
    """Seconds a job may run: ``estimated_time * JOB_TIMEOUT_FACTOR``, at least
    ``JOB_TIMEOUT_MIN``; ``JOB_TIMEOUT_DEFAULT`` without an estimate; never more than
    ``MAX_JOB_TIMEOUT``."""
    if estimated_time is None:
        timeout = settings.job_timeout_default
    else:
        timeout = max(settings.job_timeout_min,
                      math.ceil(estimated_time * settings.job_timeout_factor))
    return min(timeout, settings.max_job_timeout)


def scheduler_delay(seconds: float) -> float:
    """The delay to give RQ for a retry ``seconds`` from now.

    RQ's scheduled registry keeps whole seconds, rounded down, so a retry could come up
    to a second early; one more second makes the backoff a minimum (it may run up to a
    second late instead).
    """
    return seconds + 1.0 if seconds > 0 else 0.0


def due_second(message: QueueMessage, now: float | None = None) -> int | None:
    """The second (since the epoch) a scheduled job is due, or None if it is due now.

    Rounded up: RQ's scheduled registry keeps whole seconds and its scheduler moves a job
    once that second has begun, so the job never starts before its ``run_at``.
    """
    if message.run_at is None:
        return None
    due = message.run_at.timestamp()
    return math.ceil(due) if due > (time.time() if now is None else now) else None


def queue_key(executor: str) -> str:
    """RQ's queue (a list of job ids) of one executor (``rq:queue:<executor>``)."""
    return Queue.redis_queue_namespace_prefix + executor


def scheduled_key(executor: str) -> str:
    """RQ's scheduled registry of one executor's queue (``rq:scheduled:<executor>``)."""
    return ScheduledJobRegistry.key_template.format(executor)


def rq_queue(connection: redis.Redis, executor: str) -> Queue:
    """The RQ queue of one executor (worker pool)."""
    return Queue(executor, connection=connection, serializer=JSONSerializer)


def fetch(connection: redis.Redis, job_id: str) -> RQJob:
    """The RQ job ``job_id`` (raises ``rq.exceptions.NoSuchJobError``)."""
    return RQJob.fetch(job_id, connection=connection, serializer=JSONSerializer)


def _rq_job_fields(message: QueueMessage, settings: WorkerSettings) -> dict:
    return dict(
        args=(message.job_id, msgspec.json.encode(message).decode()),
        job_id=message.job_id,
        timeout=job_timeout(message.estimated_time, settings),
        result_ttl=settings.rq_result_ttl,
        failure_ttl=settings.rq_failure_ttl,
        description=f"{message.name} [{message.job_id}]",
        meta={ATTEMPT: message.attempt},
    )


def enqueue(connection: redis.Redis, message: QueueMessage, settings: WorkerSettings) -> bool:
    """Enqueue ``run_job(job_id, message)`` under the job's id, as attempt
    ``message.attempt`` (into the scheduled registry if it is due later); False if RQ
    already has that job (left as it is)."""
    queue = rq_queue(connection, message.executor)
    due = due_second(message)
    try:
        if due is None:
            queue.enqueue_call(RUN_JOB, unique=True, **_rq_job_fields(message, settings))
        else:
            job = queue.create_job(RUN_JOB, status=RQStatus.SCHEDULED,
                                   **_rq_job_fields(message, settings))
            queue.schedule_job(job, datetime.fromtimestamp(due, UTC), unique=True)
    except DuplicateJobError:
        return False
    return True


class BatchEnqueuer:
    """Enqueues a batch of messages in one Redis round trip, each as :func:`enqueue` does.

    RQ's unique enqueue runs one Lua script per job and ignores pipelines; this runs the
    same script (``rq.scripts.UNIQUE_ENQUEUE_SCRIPT``, by EVAL, on the job hash RQ itself
    builds) for every message of the batch in one MULTI/EXEC transaction, to which the
    dispatcher may add the queue's ack: one round trip per batch instead of three per
    job, and under ``noeviction`` a full Redis refuses the whole transaction, so nothing
    is acked that was not enqueued. (RQ is pinned; the tests run both paths against a
    real Redis and a real worker.)
    """

    def __init__(self, connection: redis.Redis, settings: WorkerSettings) -> None:
        self.connection = connection  # RQ builds its job objects on it (never written)
        self.settings = settings
        self._queues: dict[str, Queue] = {}
        self.registered: set[str] = set()  # queue keys to add to rq:queues once

    def _queue(self, executor: str) -> Queue:
        queue = self._queues.get(executor)
        if queue is None:
            queue = self._queues[executor] = rq_queue(self.connection, executor)
        return queue

    def add(self, pipe: Any, messages: list[QueueMessage]) -> list[int]:
        """Add the enqueue of each message to ``pipe`` (a scheduled one's into the scheduled
        registry); returns where each message's reply (1 enqueued, 0 held by RQ) is among
        the replies of the commands added here."""
        positions = []
        added = 0
        for message in messages:
            queue = self._queue(message.executor)
            if queue.key not in self.registered:
                # RQ's unique enqueue does not register the queue; rq-dashboard lists these.
                pipe.sadd(Queue.redis_queues_keys, queue.key)
                self.registered.add(queue.key)
                added += 1
            due = due_second(message)
            if due is None:
                job = queue.create_job(RUN_JOB, **_rq_job_fields(message, self.settings))
                queue._prepare_for_queue(job)
                ttl = job.ttl if job.ttl is not None else -1
                pipe.eval(UNIQUE_ENQUEUE_SCRIPT, 2, job.key, queue.key, job.id, "R", ttl,
                          *_build_hset_args(job))
            else:  # what Queue.schedule_job(unique=True) runs
                job = queue.create_job(RUN_JOB, status=RQStatus.SCHEDULED,
                                       **_rq_job_fields(message, self.settings))
                ttl = job.ttl if job.ttl is not None else -1
                pipe.eval(UNIQUE_SCHEDULE_SCRIPT, 3, job.key, scheduled_key(queue.name),
                          Queue.redis_queues_keys, job.id, ttl, due, queue.key,
                          *_build_hset_args(job))
            positions.append(added)
            added += 1
        return positions

    def enqueue(self, messages: list[QueueMessage]) -> list[bool]:
        """Enqueue each message unless RQ holds its job; True where it was enqueued."""
        if not messages:
            return []
        with self.connection.pipeline(transaction=True) as pipe:
            positions = self.add(pipe, messages)
            replies = pipe.execute()
        return [bool(replies[position]) for position in positions]


def message_of(rq_job: RQJob) -> QueueMessage:
    """The queue message an RQ job of :data:`RUN_JOB` carries."""
    return _decoder.decode(rq_job.args[1])


def next_attempt(rq_job: RQJob | None, message: QueueMessage) -> int:
    """The attempt number the RQ job's run is (its meta, else the message's)."""
    attempt = rq_job.meta.get(ATTEMPT) if rq_job is not None else None
    return attempt if isinstance(attempt, int) and attempt > 0 else max(1, message.attempt)


def set_next_attempt(rq_job: RQJob, attempt: int) -> None:
    """Make ``attempt`` the number of the RQ job's next run."""
    rq_job.meta[ATTEMPT] = attempt
    rq_job.save_meta()
