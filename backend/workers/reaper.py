"""Jobs whose worker died: found, then retried or failed, never left ``running``.

A busy worker refreshes its entry in RQ's started registry every WORKER_HEARTBEAT
seconds (scored by expiry). Two ways lead here:

* the worker executor sees one of its worker processes die and recovers that worker's
  current job at once (:func:`recover_worker`);
* a periodic sweep (:func:`sweep`) recovers every entry whose heartbeat expired, which
  also covers a whole machine gone (its executor died with its workers).

Whoever removes the registry entry (``ZREM`` returns 1) owns the recovery, so several
executors, or RQ's own registry cleanup, never recover one job twice. An owner that
cannot finish (Redis failed mid-way) puts the entry back due a little later, so the
next sweep of any executor, not only its own, tries again.

Recovery needs only Redis: the RQ job carries the queue message and the attempt number,
and how the attempt ended goes to the report stream like any other report.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.registry import StartedJobRegistry
from rq.utils import as_text, current_timestamp, now, parse_composite_key

from backend import markers, metrics
from backend.jobs import JobStatus
from backend.reports import Report, about
from backend.rqjobs import (
    fetch,
    message_of,
    next_attempt,
    rq_queue,
    scheduler_delay,
    set_next_attempt,
    worker_key,
)
from backend.settings import WorkerSettings
from backend.workers.middleware.retries import retry_delay
from backend.workers.report_writer import ReportWriter

log = logging.getLogger(__name__)

RECLAIM_BACKOFF = 5.0  # seconds before a failed recovery may be tried again


def sweep(connection: redis.Redis, writer: ReportWriter, settings: WorkerSettings,
          queue_names: list[str]) -> list[str]:
    """Recover every job whose worker stopped heartbeating; returns their ids."""
    recovered = []
    deadline = current_timestamp()
    for name in queue_names:
        key = StartedJobRegistry(name, connection=connection).key
        for member in connection.zrangebyscore(key, 0, deadline):
            job_id = _recover_entry(connection, writer, settings, key, as_text(member), name,
                                    "its worker stopped sending heartbeats")
            if job_id:
                recovered.append(job_id)
    return recovered


def recover_worker(connection: redis.Redis, writer: ReportWriter, settings: WorkerSettings,
                   worker_name: str, queue_names: list[str],
                   reason: str | None = None) -> str | None:
    """Recover the job a dead worker was running, if any; returns its id."""
    current = connection.hget(worker_key(worker_name), "current_job")
    if not current:
        return None
    job_id = as_text(current)
    for name in queue_names:
        key = StartedJobRegistry(name, connection=connection).key
        for member in connection.zrange(key, 0, -1):
            member = as_text(member)
            if parse_composite_key(member)[0] == job_id:
                return _recover_entry(connection, writer, settings, key, member, name,
                                      reason or f"its worker {worker_name} died")
    return None


def _recover_entry(connection: redis.Redis, writer: ReportWriter, settings: WorkerSettings,
                   key: str, member: str, queue_name: str, reason: str) -> str | None:
    if not connection.zrem(key, member):
        return None  # someone else claimed it
    job_id = parse_composite_key(member)[0]
    try:
        recover(connection, writer, settings, job_id, queue_name, reason)
    except Exception:
        # Put the claim back, due a little later, for whichever executor sweeps next.
        log.exception("job %s: recovery failed; will try again", job_id)
        try:
            connection.zadd(key, {member: current_timestamp() + RECLAIM_BACKOFF})
        except redis.RedisError:
            log.warning("job %s: could not put its claim back; RQ's registry cleanup or "
                        "the reconciler will find it", job_id)
        return None
    return job_id


def recover(connection: redis.Redis, writer: ReportWriter, settings: WorkerSettings,
            job_id: str, queue_name: str, reason: str) -> JobStatus | None:
    """Retry (after backoff) or fail a job whose attempt was lost; returns how it stands."""
    try:
        rq_job = fetch(connection, job_id)
    except NoSuchJobError:
        return None  # RQ forgot it: the reconciler sends it again if it has not finished
    with connection.pipeline(transaction=False) as pipe:
        pipe.get(markers.stop_key(job_id))
        pipe.exists(markers.done_key(job_id))
        stop, done = pipe.execute()
    if done:
        return None  # its end was reported; only RQ's bookkeeping was cut short
    message = message_of(rq_job)
    attempt = next_attempt(rq_job, message)
    at = datetime.now(UTC)
    if stop is not None:
        status, error = markers.stopped_as(stop)
        writer.send_end(Report(job_id=job_id, attempt=attempt, at=at, status=status,
                               error=error, **about(message)))
        return status
    if attempt >= settings.max_attempts:
        error = f"{reason} during attempt {attempt} of {settings.max_attempts}"
        writer.send_end(Report(job_id=job_id, attempt=attempt, at=at, status=JobStatus.FAILED,
                               error=error, dead_letter=message, **about(message)))
        metrics.JOBS_FAILED.labels(message.name, message.executor).inc()
        log.warning("job %s failed: %s", job_id, error)
        _mark_rq_failed(connection, rq_job, queue_name, error, settings)
        return JobStatus.FAILED
    delay = retry_delay(attempt, settings)
    error = f"{reason} during attempt {attempt}; retrying in {delay:.1f} s"
    writer.send_end(Report(job_id=job_id, attempt=attempt, at=at, status=JobStatus.RETRYING,
                           error=error, **about(message)))
    metrics.JOBS_RETRIED.labels(message.name, message.executor).inc()
    log.warning("job %s: %s; enqueued again in %.1f s", job_id, reason, delay)
    set_next_attempt(rq_job, attempt + 1)
    rq_job.started_at = rq_job.ended_at = None
    # Through the scheduled registry, so the retry honours the backoff like any other.
    when = now() + timedelta(seconds=scheduler_delay(delay))
    rq_queue(connection, queue_name).schedule_job(rq_job, when)
    return JobStatus.RETRYING


def _mark_rq_failed(connection: redis.Redis, rq_job: RQJob, queue_name: str, error: str,
                    settings: WorkerSettings) -> None:
    """Show the job as failed in RQ too (rq-dashboard), best effort."""
    with connection.pipeline() as pipe:
        rq_job.set_status(RQStatus.FAILED, pipeline=pipe)
        rq_queue(connection, queue_name).failed_job_registry.add(
            rq_job, ttl=settings.rq_failure_ttl, exc_string=error, pipeline=pipe)
        pipe.execute()
