"""Putting one job into its executor's RQ queue, exactly once per job id.

The RQ job id *is* the job id, and RQ's ``unique`` enqueue checks and creates the job
hash in one Lua script, so a redelivered queue message (or a second dispatcher racing
the first) enqueues nothing twice: while RQ still holds a job with that id, queued,
running, scheduled for a retry, finished or failed, the enqueue is a no-op.

The RQ job also carries the number of the attempt its next run is, in its meta
(``attempt``): the message's (1 from a submit), one more for each retry the worker
schedules, and the data service's count plus one when the reaper puts a lost attempt
back. So the worker learns it without asking the data service.
"""

from __future__ import annotations

import math

import redis
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job as RQJob

from backend.jobs import Job, QueueMessage
from backend.settings import WorkerSettings

RUN_JOB = "backend.workers.runner.run_job"
ATTEMPT = "attempt"  # RQ job meta: the number of the attempt its next run is

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
    """Enqueue ``run_job(job_id)`` under the job's id, as attempt ``message.attempt``;
    False if RQ already has that job (its attempt number is left as it is)."""
    try:
        rq_queue(connection, message.executor).enqueue_call(
            RUN_JOB,
            args=(message.job_id,),
            job_id=message.job_id,
            timeout=job_timeout(message.estimated_time, settings),
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            description=f"{message.name} [{message.job_id}]",
            meta={"name": message.name, "submitted_at": message.submitted_at.isoformat(),
                  ATTEMPT: message.attempt},
            unique=True,
        )
    except DuplicateJobError:
        return False
    return True


def next_attempt(rq_job: RQJob | None) -> int:
    """The attempt number the RQ job's run is; 0 if unknown (not run by RQ, or enqueued
    by a dispatcher older than the attempt in the meta)."""
    attempt = rq_job.meta.get(ATTEMPT) if rq_job is not None else None
    return attempt if isinstance(attempt, int) and attempt > 0 else 0


def set_next_attempt(rq_job: RQJob, attempt: int) -> None:
    """Make ``attempt`` the number of the RQ job's next run."""
    rq_job.meta[ATTEMPT] = attempt
    rq_job.save_meta()


def message_for(job: Job, attempt: int | None = None) -> QueueMessage:
    """The queue message of a stored job (for the dead-letter queue and re-enqueues)."""
    return QueueMessage(job_id=job.id, name=job.name, executor=job.executor, params=job.params,
                        estimated_time=job.estimated_time,
                        attempt=attempt if attempt is not None else max(1, job.attempts))
