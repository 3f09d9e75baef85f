"""The sweep that finishes half-written submits: jobs recorded but never queued.

A submit records the job (``created``), sends its message, then marks it ``queued``. A
kernel that dies between the first two steps leaves a ``created`` job nobody will ever
run. Every STALE_SWEEP_INTERVAL seconds each kernel asks the data service for jobs
``created`` longer than STALE_CREATED_AFTER seconds, sends their messages and marks
them ``queued``, the same two steps the submit would have taken.

This is at least once: kernel replicas may sweep the same job, or sweep a job whose
own submit is still sending. A duplicate message is harmless: the dispatcher enqueues
into RQ under the job id (a second enqueue is a no-op), and a worker never runs a
finished job (its ``running`` report is refused).
"""

from __future__ import annotations

import logging
import random
import uuid

import anyio
from litestar.datastructures import State

from backend.api.dependencies import provide_queue
from backend.client import DataServiceClient
from backend.errors import (
    DataServiceError,
    JobNotFoundError,
    MessageTooLargeError,
    TaskbrokerError,
    TransitionError,
)
from backend.jobs import Job, JobStatus, QueueMessage, UpdateJob
from backend.queues import StandardQueue

log = logging.getLogger(__name__)

# Jobs handled per data service query; a full page is followed by another at once.
SWEEP_BATCH = 100
# Bounds one sweep, so a queue that takes some messages but not all cannot hold it forever.
MAX_PAGES = 10
# A send that hangs is a refusal, as in a submit.
SEND_TIMEOUT = 30.0


def message_of(job: Job) -> QueueMessage:
    """The queue message the job's submit would have sent (a fresh trace id)."""
    return QueueMessage(job_id=job.id, name=job.name, executor=job.executor, params=job.params,
                        estimated_time=job.estimated_time, submitted_at=job.created_at,
                        trace_id=uuid.uuid4().hex)


async def _requeue(client: DataServiceClient, queue: StandardQueue, job: Job) -> bool:
    """Send the job's message and mark it queued; False if the queue refused it."""
    try:
        with anyio.fail_after(SEND_TIMEOUT):
            await queue.send(message_of(job))
    except MessageTooLargeError as exc:
        # It will never fit (only a job written around the kernel can get here): fail it,
        # as a submit would have, rather than sweep it forever.
        await _settle(client, job.id, UpdateJob(status=JobStatus.FAILED,
                                                error=f"queue refused: {exc}"[:20_000]))
        return True
    except Exception as exc:  # whatever the backend raised, the message is not on the queue
        log.warning("sweep: job %s left created: the queue refused it (%s); next sweep retries",
                    job.id, exc)
        return False
    await _settle(client, job.id, UpdateJob(status=JobStatus.QUEUED))
    log.warning("sweep: job %s was left created (a submit did not finish); queued it now",
                job.id)
    return True


async def _settle(client: DataServiceClient, job_id: str, update: UpdateJob) -> None:
    try:
        await client.update_job(job_id, update)
    except (TransitionError, JobNotFoundError):
        pass  # a worker, a cancel or another sweep moved or removed it first: fine
    except DataServiceError as exc:
        # Still created, so the next sweep sends it again: a duplicate, which is harmless.
        log.warning("sweep: job %s could not be marked %s: %s", job_id, update.status, exc)


async def sweep_once(client: DataServiceClient, queue: StandardQueue, *,
                     older_than: float, batch: int = SWEEP_BATCH) -> int:
    """Queue every job ``created`` more than ``older_than`` seconds ago; returns how many.

    Stops at the first job the queue refuses (the queue is likely down): the rest wait
    for the next sweep. Raises :class:`DataServiceError` if the data service is down.
    """
    handled = 0
    for _ in range(MAX_PAGES):
        jobs = await client.stale_jobs(JobStatus.CREATED, older_than=older_than, limit=batch)
        for job in jobs:
            if not await _requeue(client, queue, job):
                return handled
            handled += 1
        if len(jobs) < batch:
            break
    return handled


async def run_sweeper(state: State) -> None:
    """Sweep every STALE_SWEEP_INTERVAL seconds until cancelled (the app's shutdown)."""
    api = state.settings.api
    client: DataServiceClient = state.client
    while True:
        # Jitter keeps replicas started together from sweeping in lockstep.
        await anyio.sleep(api.stale_sweep_interval * random.uniform(0.8, 1.2))
        try:
            queue = await provide_queue(state)
            await sweep_once(client, queue, older_than=api.stale_created_after)
        except TaskbrokerError as exc:
            log.warning("sweep skipped: %s", exc)
        except Exception:  # a bug must not end the sweeps for the life of the process
            log.exception("sweep failed")
