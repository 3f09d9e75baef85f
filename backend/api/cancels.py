"""What a cancel adds besides the job's status: RQ's own record of it, metrics, statistics.

RQ keeps its own view of every job (rq-dashboard shows it). A job RQ still holds queued,
scheduled or deferred is cancelled with RQ's ``Job.cancel()``: out of its queue or
registry, into ``CanceledJobRegistry``, its status ``canceled``. A running one gets RQ's
stop-job command (:func:`backend.api.services.stop_running_job`) and its worker files it
as cancelled when the task has stopped. The ``stop`` marker, set before any of this,
keeps the job from running should this part fail.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import anyio
import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.registry import CanceledJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import current_timestamp

from backend import metrics, stats, tracing
from backend.jobs import Job, JobStatus
from backend.logs import job_fields

log = logging.getLogger(__name__)

# What RQ's cancel takes out of RQ; a started job is its worker's to stop.
CANCELLABLE = {RQStatus.QUEUED, RQStatus.SCHEDULED, RQStatus.DEFERRED}


def _cancel(connection: redis.Redis, job_id: str, keep: int) -> bool:
    try:
        rq_job = RQJob.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return False  # not in RQ yet (its message is on the way: the stop marker holds it)
    if rq_job.get_status() not in CANCELLABLE:
        return False
    registry = CanceledJobRegistry(rq_job.origin, connection=connection,
                                   serializer=JSONSerializer)
    now = current_timestamp()
    with connection.pipeline() as pipe:
        try:
            rq_job.cancel(pipeline=pipe)
        except InvalidJobOperation:
            return False  # cancelled meanwhile
        # Our RQ jobs never expire by themselves: a cancelled one is kept `keep` seconds
        # (RQ_FAILURE_TTL), its registry entry as long, and older entries go.
        pipe.expire(rq_job.key, max(1, keep))
        pipe.zadd(registry.key, {job_id: now + keep})
        pipe.zremrangebyscore(registry.key, 0, now)
        pipe.execute()
    return True


async def cancel_in_rq(connection: redis.Redis | None, job_id: str, keep: int) -> bool:
    """Best effort: cancel ``job_id`` in RQ if RQ holds it queued, scheduled or deferred;
    returns whether it did."""
    if connection is None:
        return False
    try:
        return await anyio.to_thread.run_sync(_cancel, connection, job_id, keep)
    except RedisError as exc:
        log.info("could not cancel job %s in RQ (the stop marker holds it): %s", job_id, exc)
        return False


def _trace_id() -> str:
    traced = tracing.current_trace()
    return traced[0] if traced is not None else ""


async def note_cancelled(connection: aioredis.Redis, job: Job) -> None:
    """Count a cancel the store has just recorded (metrics and the statistics)."""
    metrics.JOBS_CANCELLED.labels(job.name, job.executor).inc()
    log.info("job %s (%s) cancelled", job.id, job.name, extra=job_fields(job.id, _trace_id()))
    try:
        await stats.record(connection, [stats.Finish(
            job_id=job.id, status=JobStatus.CANCELLED, task=job.name,
            finished_at=job.finished_at or datetime.now(UTC))])
    except RedisError as exc:
        log.warning("the statistics miss the cancel of job %s: %s", job.id, exc)
