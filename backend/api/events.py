"""Live status without polling: a job's changes as Server-Sent Events.

Every stream of a kernel process is fed by one :class:`JobWatch`: every
SSE_POLL_INTERVAL seconds it reads all the jobs its streams follow with *one* data
service request (``POST /jobs/query``), on a connection pool of its own, and hands each
stream the changes of its job. So a thousand open streams cost one request per
interval, and they never queue in front of submits. The kernel keeps no state of its
own beyond that (any replica can serve any stream). Streams are capped per process
(SSE_MAX_STREAMS) and per user (SSE_MAX_STREAMS_PER_USER): beyond, a 429.

A stream sends ``event: job`` with the job as JSON whenever its status, progress or
update time changes, the first one at once, and ends after a terminal status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, get
from litestar.datastructures import State
from litestar.response import ServerSentEvent, ServerSentEventMessage

from backend.api.bodies import responses
from backend.api.dependencies import AppSettings, Client, JobIdParam
from backend.api.jobs import visible_job
from backend.api.security import still_signed_in
from backend.errors import TaskbrokerError, TooManyStreamsError
from backend.jobs import Job
from backend.store.client import DataServiceClient

log = logging.getLogger(__name__)

# Proxies and load balancers drop connections that stay silent for about a minute.
KEEPALIVE_SECONDS = 15.0
QUERY_CHUNK = 1000  # ids per data service request
STOP_CHECK_SECONDS = 1.0
SIGNED_OUT = "your sign-in is no longer valid (signed out, expired, revoked or disabled)"


def _state(job: Job) -> tuple[Any, ...]:
    return (job.status, job.progress, job.updated_at)


def job_event(job: Job) -> ServerSentEventMessage:
    return ServerSentEventMessage(event="job", data=msgspec.json.encode(job).decode(),
                                  id=job.updated_at.isoformat())


def error_event(detail: str) -> ServerSentEventMessage:
    data = msgspec.json.encode({"detail": detail}).decode()
    return ServerSentEventMessage(event="error", data=data)


class _Deleted:
    pass


class _Failed:
    def __init__(self, detail: str) -> None:
        self.detail = detail


Update = Job | _Deleted | _Failed


class JobWatch:
    """One poll for all the live streams of a process."""

    def __init__(self, client: DataServiceClient, interval: float, *, max_streams: int,
                 max_per_user: int, give_up_after: float = 30.0) -> None:
        self.client = client
        self.interval = interval
        self.max_streams = max_streams
        self.max_per_user = max_per_user
        self.give_up_after = give_up_after
        self._streams: dict[str, set[asyncio.Queue[Update]]] = {}
        self._users: Counter[str] = Counter()
        self._open = 0
        self._task: asyncio.Task[None] | None = None
        self._failing_since: float | None = None

    @property
    def open_streams(self) -> int:
        return self._open

    def check_room(self, job: Job) -> None:
        """Raise :class:`TooManyStreamsError` if a stream of ``job`` would be over a limit."""
        if self._open >= self.max_streams:
            raise TooManyStreamsError(f"this server holds {self._open} live streams, its limit "
                                      f"(SSE_MAX_STREAMS); poll GET /api/v1/jobs/{job.id} "
                                      "instead, or try again later")
        if self._users[job.user_id] >= self.max_per_user:
            raise TooManyStreamsError(f"user {job.user_id} holds {self._users[job.user_id]} "
                                      "live streams on this server, the limit "
                                      "(SSE_MAX_STREAMS_PER_USER); close one first")

    @contextlib.contextmanager
    def follow(self, job: Job) -> Any:
        """Register a stream of ``job``; yields the queue its updates arrive on."""
        self.check_room(job)
        updates: asyncio.Queue[Update] = asyncio.Queue()
        self._streams.setdefault(job.id, set()).add(updates)
        self._users[job.user_id] += 1
        self._open += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll())
        try:
            yield updates
        finally:
            self._open -= 1
            self._users[job.user_id] -= 1
            if self._users[job.user_id] <= 0:
                del self._users[job.user_id]
            followers = self._streams.get(job.id)
            if followers is not None:
                followers.discard(updates)
                if not followers:
                    del self._streams[job.id]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self) -> None:
        while self._streams:
            await asyncio.sleep(self.interval)
            ids = list(self._streams)
            try:
                found: dict[str, Job] = {}
                for start in range(0, len(ids), QUERY_CHUNK):
                    for job in await self.client.get_jobs(ids[start:start + QUERY_CHUNK]):
                        found[job.id] = job
            except TaskbrokerError as exc:
                self._failing(exc)
                continue
            self._failing_since = None
            for job_id in ids:
                update: Update = found.get(job_id) or _Deleted()
                for followers in (self._streams.get(job_id) or ()):
                    followers.put_nowait(update)

    def _failing(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            log.warning("live streams cannot read their jobs: %s", exc)
        if now - self._failing_since >= self.give_up_after:
            # The browsers reconnect (to this or another replica) once the store is back.
            for followers in list(self._streams.values()):
                for updates in followers:
                    updates.put_nowait(_Failed("the job store (data service) is unavailable; "
                                               "reconnect shortly"))
            self._failing_since = None


async def job_changes(watch: JobWatch, first: Job, *, keepalive: float = KEEPALIVE_SECONDS,
                      stopping: threading.Event | None = None,
                      allowed: Callable[[], Awaitable[bool]] | None = None,
                      ) -> AsyncIterator[ServerSentEventMessage]:
    """Events for ``first`` and each later change of the job, until it finishes.

    Also ends, without an event, once ``stopping`` is set (the process is shutting down),
    and with an ``error`` event once ``allowed`` says the caller may no longer be served
    (asked at every keep-alive and before every change is sent).
    """
    yield job_event(first)
    if first.finished:
        return
    with watch.follow(first) as updates:
        last, last_sent = _state(first), time.monotonic()
        while True:
            try:
                # Wake every second to notice a shutdown.
                update: Update | None = await asyncio.wait_for(updates.get(),
                                                               timeout=STOP_CHECK_SECONDS)
            except TimeoutError:
                update = None
            if stopping is not None and stopping.is_set():
                return
            if isinstance(update, _Deleted):
                yield error_event(f"job {first.id} was deleted")
                return
            if isinstance(update, _Failed):
                yield error_event(update.detail)
                return
            if isinstance(update, Job):
                if _state(update) != last:
                    if allowed is not None and not await allowed():
                        yield error_event(SIGNED_OUT)
                        return
                    last, last_sent = _state(update), time.monotonic()
                    yield job_event(update)
                if update.finished:
                    return
            # Nothing sent for a while (the poll brings the unchanged job, or nothing): a
            # comment keeps proxies from closing the stream, and the caller is asked for again.
            if time.monotonic() - last_sent >= keepalive:
                if allowed is not None and not await allowed():
                    yield error_event(SIGNED_OUT)
                    return
                last_sent = time.monotonic()
                yield ServerSentEventMessage(comment="keep-alive", data=None)


@get("/jobs/{job_id:str}/events", summary="Follow a job live", tags=["jobs"],
     responses=responses(401, 404, 429, 503))
async def job_events(request: Request[Any, Any, Any], job_id: JobIdParam, client: Client,
                     settings: AppSettings, state: State) -> ServerSentEvent:
    """``text/event-stream`` of ``event: job`` (data: the job as JSON) on every change.

    The first event comes at once; the stream ends after the job finishes. A 404
    (before any event) means there is no such job; a 429 that this server or this user
    holds as many streams as allowed.
    """
    # An unknown job (or another user's): a plain 404, not an empty stream.
    first = await visible_job(client, job_id, request.user)
    watch: JobWatch = state.watch
    if not first.finished:
        # Refuse now, with a status code, rather than inside a stream already begun.
        watch.check_room(first)
    # The caller is looked at again while the stream lasts: a sign-out, a revoked token or
    # a disabled user ends it (within the few seconds the kernel caches who is who).
    return ServerSentEvent(job_changes(watch, first, stopping=state.stopping,
                                       allowed=lambda: still_signed_in(request)))


EVENT_ROUTES = [job_events]
