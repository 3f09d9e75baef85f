"""Jobs whose worker died: found, then retried or failed, never left ``running``.

A busy worker refreshes its entry in RQ's started registry every WORKER_HEARTBEAT
seconds (scored by expiry). Two ways lead here:

* the worker executor sees one of its worker processes die and recovers that worker's
  current job at once (:func:`recover_worker`);
* a periodic sweep (:func:`sweep`) recovers every entry whose heartbeat expired, which
  also covers a whole machine gone (its executor died with its workers).

Whoever removes the registry entry (``ZREM`` returns 1) owns the recovery, so several
executors, or RQ's own registry cleanup, never recover one job twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.registry import StartedJobRegistry
from rq.utils import as_text, current_timestamp, now, parse_composite_key

from backend.errors import JobNotFoundError, TransitionError
from backend.jobs import Job, JobStatus, UpdateJob
from backend.workers import outbox
from backend.workers.enqueue import (
    FAILURE_TTL,
    enqueue,
    message_for,
    rq_queue,
    scheduler_delay,
    set_next_attempt,
)
from backend.workers.middleware import retry_delay
from backend.workers.services import WorkerServices

log = logging.getLogger(__name__)

WORKER_KEY = "rq:worker:{}"


def sweep(services: WorkerServices, queue_names: list[str]) -> list[str]:
    """Recover every job whose worker stopped heartbeating; returns their ids."""
    connection = services.redis
    recovered = []
    deadline = current_timestamp()
    for name in queue_names:
        key = StartedJobRegistry(name, connection=connection).key
        for member in connection.zrangebyscore(key, 0, deadline):
            job_id = _recover_entry(services, key, as_text(member), name,
                                    "its worker stopped sending heartbeats")
            if job_id:
                recovered.append(job_id)
    return recovered


def recover_worker(services: WorkerServices, worker_name: str, queue_names: list[str],
                   reason: str | None = None) -> str | None:
    """Recover the job a dead worker was running, if any; returns its id."""
    connection = services.redis
    current = connection.hget(WORKER_KEY.format(worker_name), "current_job")
    if not current:
        return None
    job_id = as_text(current)
    for name in queue_names:
        key = StartedJobRegistry(name, connection=connection).key
        for member in connection.zrange(key, 0, -1):
            member = as_text(member)
            if parse_composite_key(member)[0] == job_id:
                return _recover_entry(services, key, member, name,
                                      reason or f"its worker {worker_name} died")
    return None


def _recover_entry(services: WorkerServices, key: str, member: str, queue_name: str,
                   reason: str) -> str | None:
    connection = services.redis
    if not connection.zrem(key, member):
        return None  # someone else claimed it
    job_id = parse_composite_key(member)[0]
    try:
        recover(services, job_id, queue_name, reason)
    except Exception:
        # Put the claim back, already expired, so the next sweep tries again.
        log.exception("job %s: recovery failed; will try again", job_id)
        connection.zadd(key, {member: current_timestamp()})
        return None
    return job_id


def recover(services: WorkerServices, job_id: str, queue_name: str,
            reason: str) -> JobStatus | None:
    """Retry (after backoff) or fail a job whose attempt was lost; idempotent."""
    settings = services.settings.worker
    client = services.client
    # A report the attempt made but could not deliver (its result, say) counts first.
    outbox.flush(services, job_id)
    try:
        job = client.get_job(job_id)
    except JobNotFoundError:
        return None
    if job.finished:
        return job.status
    started = job.status in (JobStatus.RUNNING, JobStatus.RETRYING)
    if started and job.attempts >= settings.max_attempts:
        error = f"{reason} during attempt {job.attempts} of {settings.max_attempts}"
        try:
            # Through the outbox, so the dead letter waits there if its queue is down.
            outbox.report(services, job_id, job.attempts,
                          UpdateJob(status=JobStatus.FAILED, error=error), message_for(job), error)
        except TransitionError as exc:
            return JobStatus(exc.current) if exc.current else None
        log.warning("job %s failed: %s", job_id, error)
        _mark_rq_failed(services, job_id, queue_name, error)
        return JobStatus.FAILED
    delay = retry_delay(job.attempts, settings) if job.attempts else 0.0
    if job.status is JobStatus.RUNNING:
        error = f"{reason} during attempt {job.attempts}; retrying in {delay:.1f} s"
        try:
            client.update_job(job_id, UpdateJob(status=JobStatus.RETRYING, error=error))
        except TransitionError as exc:
            return JobStatus(exc.current) if exc.current else None
    log.warning("job %s: %s; enqueued again in %.1f s", job_id, reason, delay)
    _requeue(services, job, queue_name, delay)
    return JobStatus.RETRYING


def _requeue(services: WorkerServices, job: Job, queue_name: str, delay: float) -> None:
    """Put the job back into RQ as its next attempt, counted from the data service's record
    (the lost attempt counts if it reported ``running``)."""
    connection = services.redis
    attempt = job.attempts + 1
    try:
        rq_job = RQJob.fetch(job.id, connection=connection)
    except NoSuchJobError:
        enqueue(connection, message_for(job, attempt), services.settings.worker)
        return
    set_next_attempt(rq_job, attempt)
    rq_job.started_at = rq_job.ended_at = None
    # Through the scheduled registry, so the retry honours the backoff like any other.
    when = now() + timedelta(seconds=scheduler_delay(delay))
    rq_queue(connection, queue_name).schedule_job(rq_job, when)


def _mark_rq_failed(services: WorkerServices, job_id: str, queue_name: str, error: str) -> None:
    """Show the job as failed in RQ too (rq-dashboard), best effort."""
    try:
        rq_job = RQJob.fetch(job_id, connection=services.redis)
    except NoSuchJobError:
        return
    with services.redis.pipeline() as pipe:
        rq_job.set_status(RQStatus.FAILED, pipeline=pipe)
        rq_queue(services.redis, queue_name).failed_job_registry.add(
            rq_job, ttl=FAILURE_TTL, exc_string=error, pipeline=pipe)
        pipe.execute()
