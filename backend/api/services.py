"""What the kernel does to a job after its submit: cancel it, delete it.

A cancel is signalled through Redis before it is recorded: the job's ``stop`` marker is
set first (a worker that picks the job from then on does not run it), then the store
records ``cancelled``, then RQ is told: a job it holds queued or scheduled is cancelled
with RQ's own cancel (:mod:`backend.api.cancels`: rq-dashboard shows it cancelled), and
a worker already running it is told to stop at once (RQ's stop-job command). Without
Redis there is no cancel (503): recording ``cancelled`` while a worker could still start
the job would be a promise the system cannot keep. A cancelled job with a callback URL
gets its webhook like any finished job.
"""

from __future__ import annotations

import json
import logging

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from backend import markers, webhook_signing
from backend.api.cancels import cancel_in_rq, note_cancelled
from backend.errors import QueueError, TransitionError
from backend.jobs import DEFAULT_EXECUTOR, Job, JobStatus, UpdateJob
from backend.rqjobs import command_channel, job_key
from backend.settings import Settings
from backend.store.client import DataServiceClient

log = logging.getLogger(__name__)


def default_executor(settings: Settings) -> str:
    """``standard`` when it is configured, else the first configured executor."""
    names = settings.worker.executor_names
    return DEFAULT_EXECUTOR if DEFAULT_EXECUTOR in names or not names else names[0]


async def cancel_job(client: DataServiceClient, connection: aioredis.Redis, current: Job,
                     ttl: int, *, rq: redis.Redis | None = None, rq_keep: int = 86400) -> Job:
    """Cancel a job (as just read) that has not finished; with ``rq`` (a synchronous
    connection for RQ), RQ cancels it too if it holds it (kept ``rq_keep`` seconds).

    Raises :class:`TransitionError` (with the current status) if it has, and
    :class:`QueueError` if Redis cannot be told (nothing was changed then).
    """
    job_id = current.id
    if current.finished:
        raise TransitionError(f"job {job_id} has already finished ({current.status})",
                              current.status)
    try:
        await connection.set(markers.stop_key(job_id), markers.CANCELLED,
                             ex=markers.stop_ttl(ttl, current.run_at))
    except RedisError as exc:
        raise QueueError(f"cannot tell the workers to stop job {job_id}: {exc}") from exc
    job = await client.update_job(job_id, UpdateJob(status=JobStatus.CANCELLED))
    await note_cancelled(connection, job)
    if current.status is not JobStatus.CREATED:
        # Queued or scheduled in RQ: RQ's own cancel. Running: RQ's stop-job command.
        if not await cancel_in_rq(rq, job_id, rq_keep):
            await stop_running_job(connection, job_id)
    await schedule_webhook(connection, job)
    return job


async def schedule_webhook(connection: aioredis.Redis, job: Job) -> None:
    """Schedule the webhook of a job the kernel itself finished (a cancel); the recorder
    does it for jobs finished through reports."""
    if not job.callback_url:
        return
    try:
        await webhook_signing.schedule(connection, [job])
    except RedisError as exc:
        log.error("the webhook of cancelled job %s could not be scheduled: %s", job.id, exc)


async def stop_running_job(connection: aioredis.Redis, job_id: str) -> None:
    """Best effort: tell the RQ worker running ``job_id`` to stop it now.

    The task also stops at its next progress report or cancellation check (the ``stop``
    marker), so a failure here only delays the stop.
    """
    try:
        worker = await connection.hget(job_key(job_id), "worker_name")
        if worker:
            name = worker.decode() if isinstance(worker, bytes) else worker
            await connection.publish(command_channel(name),
                                     json.dumps({"command": "stop-job", "job_id": job_id}))
    except RedisError as exc:  # best effort by design
        log.info("could not send a stop command for job %s: %s", job_id, exc)


async def delete_job(client: DataServiceClient, current: Job) -> None:
    """Delete a finished job (as just read); raises :class:`TransitionError` if it has not."""
    job_id = current.id
    if not current.finished:
        raise TransitionError(
            f"job {job_id} is {current.status}; cancel it before deleting it", current.status
        )
    await client.delete_job(job_id)
