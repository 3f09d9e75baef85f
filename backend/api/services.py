"""What the kernel does with a job: submit it, cancel it, delete it.

The submit order loses nothing: the job is recorded (``created``), its message is put
on the STANDARD queue, the job is marked ``queued``, and only then does the client get
the id. A job the queue refused is marked ``failed`` with the reason, so the client's
503 names a job that will never run rather than one that silently vanished. A kernel
that dies after the first step leaves a ``created`` job: :mod:`backend.api.sweeper`
sends it later.
"""

from __future__ import annotations

import logging

import anyio
import msgspec

from backend.client import DataServiceClient
from backend.errors import (
    DataServiceError,
    MessageTooLargeError,
    QueueError,
    TaskbrokerError,
    TransitionError,
)
from backend.jobs import (
    DEFAULT_EXECUTOR,
    CreateJob,
    Job,
    JobExecutionRequest,
    JobStatus,
    QueueMessage,
    UpdateJob,
)
from backend.queues import MAX_MESSAGE_BYTES, StandardQueue
from backend.settings import Settings

log = logging.getLogger(__name__)

# Same length as any real ObjectId, so a message sized with it is sized exactly.
_SIZING_ID = "0" * 24
# A send that hangs is a refusal: the client gets its answer and the job is failed.
SEND_TIMEOUT = 30.0


class QueueRefusedError(QueueError):
    """The queue did not take a job's message; the job was marked failed."""

    def __init__(self, message: str, job_id: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.too_large = too_large


def default_executor(settings: Settings) -> str:
    """``standard`` when it is configured, else the first configured executor."""
    names = settings.worker.executor_names
    return DEFAULT_EXECUTOR if DEFAULT_EXECUTOR in names or not names else names[0]


def queue_message(job_id: str, request: JobExecutionRequest, executor: str,
                  trace_id: str) -> QueueMessage:
    return QueueMessage(job_id=job_id, name=request.job_name, executor=executor,
                        params=request.params, estimated_time=request.estimated_time,
                        trace_id=trace_id)


async def submit_job(client: DataServiceClient, queue: StandardQueue,
                     request: JobExecutionRequest, executor: str, trace_id: str) -> str:
    """Record the job, queue it, mark it queued; returns its id.

    Raises :class:`MessageTooLargeError` before recording anything if the message could
    never fit on the queue, :class:`DataServiceError` if the job could not be recorded
    (nothing was queued), and :class:`QueueRefusedError` if the queue refused it.
    """
    # Refuse an oversized message up front rather than leave a failed job behind.
    size = len(msgspec.json.encode(queue_message(_SIZING_ID, request, executor, trace_id)))
    if size > MAX_MESSAGE_BYTES:
        raise MessageTooLargeError(
            f"params too large: the job's queue message would be {size} bytes; "
            f"the limit is {MAX_MESSAGE_BYTES} bytes"
        )

    job_id = await client.create_empty_job(CreateJob(
        name=request.job_name, user_id=request.user_id, description=request.description,
        estimated_time=request.estimated_time, params=request.params, executor=executor,
    ))
    try:
        with anyio.fail_after(SEND_TIMEOUT):
            await queue.send(queue_message(job_id, request, executor, trace_id))
    except Exception as exc:
        # Whatever the backend raised, the message is not known to be on the queue.
        # Marking the job failed also turns a message that did arrive into a no-op:
        # a worker never runs a finished job (its ``running`` report is refused).
        reason = f"queue refused: {exc}"
        log.error("job %s not queued: %s", job_id, reason)
        await _mark_failed(client, job_id, reason)
        raise QueueRefusedError(f"job {job_id} was not queued ({reason}); it is marked failed",
                                job_id, too_large=isinstance(exc, MessageTooLargeError)) from exc
    try:
        await client.update_job(job_id, UpdateJob(status=JobStatus.QUEUED))
    except TransitionError:
        pass  # a worker already moved it on (running, or even finished): fine
    except DataServiceError as exc:
        # The job is recorded and on the queue, so it will run (created -> running is a
        # legal move). Answering 503 would make the client submit it twice.
        log.warning("job %s is queued but could not be marked queued: %s", job_id, exc)
    return job_id


async def _mark_failed(client: DataServiceClient, job_id: str, reason: str) -> None:
    try:
        await client.update_job(job_id, UpdateJob(status=JobStatus.FAILED, error=reason[:20_000]))
    except TaskbrokerError as exc:
        log.error("job %s could not be marked failed: %s", job_id, exc)


async def cancel_job(client: DataServiceClient, job_id: str, redis_url: str) -> Job:
    """Mark the job cancelled; a running job's RQ work horse is also told to stop.

    Raises :class:`TransitionError` (with the current status) if the job has finished.
    """
    current = await client.get_job(job_id)
    if current.finished:
        raise TransitionError(f"job {job_id} has already finished ({current.status})",
                              current.status)
    job = await client.update_job(job_id, UpdateJob(status=JobStatus.CANCELLED))
    # A queued job may have started between the read and the write above, so the stop
    # command goes out unless the job had never left the kernel; it is a no-op when no
    # worker holds the job.
    if current.status != JobStatus.CREATED:
        await anyio.to_thread.run_sync(stop_running_job, redis_url, job_id)
    return job


def stop_running_job(redis_url: str, job_id: str) -> None:
    """Best effort: ask the RQ worker running ``job_id`` to stop it now.

    The task also stops at its next progress report or cancellation check, so a
    failure here (Redis down, job between attempts) only delays the stop.
    """
    from redis import Redis
    from rq.command import send_stop_job_command

    try:
        with Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2) as redis:
            send_stop_job_command(redis, job_id)
    except Exception as exc:  # best effort by design
        log.info("could not send a stop command for job %s: %s", job_id, exc)


async def delete_job(client: DataServiceClient, job_id: str) -> None:
    """Delete a finished job; raises :class:`TransitionError` if it has not finished."""
    current = await client.get_job(job_id)
    if not current.finished:
        raise TransitionError(
            f"job {job_id} is {current.status}; cancel it before deleting it", current.status
        )
    await client.delete_job(job_id)
