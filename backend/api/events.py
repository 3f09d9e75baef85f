"""Live status without polling: a job's changes as Server-Sent Events.

The stream polls the data service (the kernel keeps no state of its own, so any
kernel replica can serve any stream) and sends ``event: job`` with the job as JSON
whenever its status, progress or update time changes, the first one at once. It ends
after a terminal status; a browser's EventSource should close itself on that event
rather than reconnect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
from litestar import get
from litestar.datastructures import State
from litestar.response import ServerSentEvent, ServerSentEventMessage

from backend.api.dependencies import AppSettings, Client, JobIdParam
from backend.client import DataServiceClient
from backend.errors import JobNotFoundError, TaskbrokerError
from backend.jobs import Job

log = logging.getLogger(__name__)

# Proxies and load balancers drop connections that stay silent for about a minute.
KEEPALIVE_SECONDS = 15.0


def _state(job: Job) -> tuple[Any, ...]:
    return (job.status, job.progress, job.updated_at)


def job_event(job: Job) -> ServerSentEventMessage:
    return ServerSentEventMessage(event="job", data=msgspec.json.encode(job).decode(),
                                  id=job.updated_at.isoformat())


def error_event(detail: str) -> ServerSentEventMessage:
    data = msgspec.json.encode({"detail": detail}).decode()
    return ServerSentEventMessage(event="error", data=data)


async def job_changes(client: DataServiceClient, first: Job, interval: float,
                      keepalive: float = KEEPALIVE_SECONDS,
                      stopping: threading.Event | None = None,
                      ) -> AsyncIterator[ServerSentEventMessage]:
    """Events for ``first`` and each later change of the job, until it finishes.

    Also ends, without an event, once ``stopping`` is set (the process is shutting down).
    """
    yield job_event(first)
    last, last_sent = _state(first), time.monotonic()
    finished = first.finished
    while not finished:
        await anyio.sleep(interval)
        if stopping is not None and stopping.is_set():
            return
        try:
            job = await client.get_job(first.id)
        except JobNotFoundError:
            yield error_event(f"job {first.id} was deleted")
            return
        except TaskbrokerError as exc:
            # The client already retried up to its deadline; let the browser reconnect.
            log.warning("event stream of job %s ends: %s", first.id, exc)
            yield error_event(f"the job store (data service) failed: {exc}")
            return
        finished = job.finished
        if _state(job) != last:
            last, last_sent = _state(job), time.monotonic()
            yield job_event(job)
        elif time.monotonic() - last_sent >= keepalive:
            last_sent = time.monotonic()
            yield ServerSentEventMessage(comment="keep-alive", data=None)


@get("/jobs/{job_id:str}/events", summary="Follow a job live", tags=["jobs"])
async def job_events(job_id: JobIdParam, client: Client, settings: AppSettings,
                     state: State) -> ServerSentEvent:
    """``text/event-stream`` of ``event: job`` (data: the job as JSON) on every change.

    The first event comes at once; the stream ends after the job finishes. A 404
    (before any event) means there is no such job.
    """
    first = await client.get_job(job_id)  # unknown job: a plain 404, not an empty stream
    return ServerSentEvent(job_changes(client, first, settings.api.sse_poll_interval,
                                       stopping=state.stopping))


EVENT_ROUTES = [job_events]
