"""Putting one job into its executor's RQ queue, exactly once per job id.

The RQ job id *is* the job id, and RQ's ``unique`` enqueue checks and creates the job
hash in one Lua script, so a redelivered queue message (or a second dispatcher racing
the first) enqueues nothing twice: while RQ still holds a job with that id, queued,
running, scheduled for a retry, finished or failed, the enqueue is a no-op.
"""

from __future__ import annotations

import math

import redis
from rq import Queue
from rq.exceptions import DuplicateJobError

from backend.jobs import Job, QueueMessage
from backend.settings import WorkerSettings

RUN_JOB = "backend.workers.runner.run_job"

# RQ keeps a finished job's record this long. Within that window a redelivered message
# is recognised by its id alone; after it the runner still refuses to run a job that
# the data service already shows as finished.
RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600


def job_timeout(estimated_time: float | None, settings: WorkerSettings) -> int:
    """Seconds a job may run: ``estimated_time * JOB_TIMEOUT_FACTOR``, at least
    ``JOB_TIMEOUT_MIN``; ``JOB_TIMEOUT_DEFAULT`` without an estimate."""
    if estimated_time is None:
        return settings.job_timeout_default
    return max(settings.job_timeout_min, math.ceil(estimated_time * settings.job_timeout_factor))


def scheduler_delay(seconds: float) -> float:
    """The delay to give RQ for a retry ``seconds`` from now.

    RQ's scheduled registry keeps whole seconds, rounded down, so a retry could come up
    to a second early; one more second makes the backoff a minimum (it may run up to a
    second late instead).
    """
    return seconds + 1.0 if seconds > 0 else 0.0


def rq_queue(connection: redis.Redis, executor: str) -> Queue:
    """The RQ queue of one executor (worker pool)."""
    return Queue(executor, connection=connection)


def enqueue(connection: redis.Redis, message: QueueMessage, settings: WorkerSettings) -> bool:
    """Enqueue ``run_job(job_id)`` under the job's id; False if RQ already has that job."""
    try:
        rq_queue(connection, message.executor).enqueue_call(
            RUN_JOB,
            args=(message.job_id,),
            job_id=message.job_id,
            timeout=job_timeout(message.estimated_time, settings),
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            description=f"{message.name} [{message.job_id}]",
            meta={"name": message.name, "submitted_at": message.submitted_at.isoformat()},
            unique=True,
        )
    except DuplicateJobError:
        return False
    return True


def message_for(job: Job, attempt: int | None = None) -> QueueMessage:
    """The queue message of a stored job (for the dead-letter queue and re-enqueues)."""
    return QueueMessage(job_id=job.id, name=job.name, executor=job.executor, params=job.params,
                        estimated_time=job.estimated_time,
                        attempt=attempt if attempt is not None else max(1, job.attempts))
