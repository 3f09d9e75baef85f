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

``GET /api/v1/events?job=<id>&job=<id>`` follows up to MAX_FOLLOWED jobs on one
connection (a browser allows about six per host, for all its tabs): the same ``job``
events, each naming its job by its ``id``; ``event: gone`` for a job that does not exist,
is not the caller's, or was deleted; the stream ends once every job it follows has
finished or gone. It counts as one stream against the limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.datastructures import State
from litestar.exceptions import ValidationException
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from backend.api.bodies import responses
from backend.api.dependencies import AppSettings, Client, JobIdParam
from backend.api.jobs import visible_job
from backend.api.security import Principal, still_signed_in
from backend.errors import JobNotFoundError, TaskbrokerError, TooManyStreamsError
from backend.jobs import OBJECT_ID_PATTERN, Job
from backend.store.client import DataServiceClient

log = logging.getLogger(__name__)

# Proxies and load balancers drop connections that stay silent for about a minute.
KEEPALIVE_SECONDS = 15.0
QUERY_CHUNK = 1000  # ids per data service request
STOP_CHECK_SECONDS = 1.0
MAX_FOLLOWED = 100  # jobs of one shared stream: the longest page of GET /api/v1/jobs
_JOB_ID = re.compile(OBJECT_ID_PATTERN)
SIGNED_OUT = "your sign-in is no longer valid (signed out, expired, revoked or disabled)"


def _state(job: Job) -> tuple[Any, ...]:
    return (job.status, job.progress, job.updated_at)


def job_event(job: Job) -> ServerSentEventMessage:
    return ServerSentEventMessage(event="job", data=msgspec.json.encode(job).decode(),
                                  id=job.updated_at.isoformat())


def error_event(detail: str) -> ServerSentEventMessage:
    data = msgspec.json.encode({"detail": detail}).decode()
    return ServerSentEventMessage(event="error", data=data)


def gone_event(job_id: str, detail: str) -> ServerSentEventMessage:
    data = msgspec.json.encode({"id": job_id, "detail": detail}).decode()
    return ServerSentEventMessage(event="gone", data=data)


class _Deleted:
    pass


class _Failed:
    def __init__(self, detail: str) -> None:
        self.detail = detail


Update = Job | _Deleted | _Failed


class Following:
    """What one stream follows, and the queue the poll hands it (job id, update) on."""

    def __init__(self, user_id: str, job_ids: list[str]) -> None:
        self.user_id = user_id
        self.job_ids = set(job_ids)
        self.updates: asyncio.Queue[tuple[str, Update]] = asyncio.Queue()


class JobWatch:
    """One poll for all the live streams of a process."""

    def __init__(self, client: DataServiceClient, interval: float, *, max_streams: int,
                 max_per_user: int, give_up_after: float = 30.0) -> None:
        self.client = client
        self.interval = interval
        self.max_streams = max_streams
        self.max_per_user = max_per_user
        self.give_up_after = give_up_after
        self._streams: dict[str, set[Following]] = {}
        self._users: Counter[str] = Counter()
        self._open = 0
        self._task: asyncio.Task[None] | None = None
        self._failing_since: float | None = None

    @property
    def open_streams(self) -> int:
        return self._open

    def check_room(self, user_id: str, instead: str = "GET /api/v1/jobs") -> None:
        """Raise :class:`TooManyStreamsError` if one more stream of ``user_id`` would be over
        a limit; ``instead`` is what to poll meanwhile."""
        if self._open >= self.max_streams:
            raise TooManyStreamsError(f"this server holds {self._open} live streams, its limit "
                                      f"(SSE_MAX_STREAMS); poll {instead} instead, or try "
                                      "again later")
        if self._users[user_id] >= self.max_per_user:
            raise TooManyStreamsError(f"user {user_id} holds {self._users[user_id]} "
                                      "live streams on this server, the limit "
                                      "(SSE_MAX_STREAMS_PER_USER); close one first")

    @contextlib.contextmanager
    def follow(self, user_id: str, job_ids: list[str]) -> Any:
        """Register one stream of ``user_id`` following ``job_ids``; yields its
        :class:`Following`."""
        self.check_room(user_id)
        following = Following(user_id, job_ids)
        for job_id in following.job_ids:
            self._streams.setdefault(job_id, set()).add(following)
        self._users[user_id] += 1
        self._open += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll())
        try:
            yield following
        finally:
            self._open -= 1
            self._users[user_id] -= 1
            if self._users[user_id] <= 0:
                del self._users[user_id]
            for job_id in list(following.job_ids):
                self.drop(following, job_id)

    def drop(self, following: Following, job_id: str) -> None:
        """Stop looking up ``job_id`` for this stream (it finished or is gone)."""
        following.job_ids.discard(job_id)
        followers = self._streams.get(job_id)
        if followers is not None:
            followers.discard(following)
            if not followers:
                del self._streams[job_id]

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
                for following in (self._streams.get(job_id) or ()):
                    following.updates.put_nowait((job_id, update))

    def _failing(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            log.warning("live streams cannot read their jobs: %s", exc)
        if now - self._failing_since >= self.give_up_after:
            # The browsers reconnect (to this or another replica) once the store is back.
            failed = _Failed("the job store (data service) is unavailable; reconnect shortly")
            for following in set().union(*self._streams.values()):
                following.updates.put_nowait(("", failed))
            self._failing_since = None


def job_changes(watch: JobWatch, first: Job, *, keepalive: float = KEEPALIVE_SECONDS,
                stopping: threading.Event | None = None,
                allowed: Callable[[], Awaitable[bool]] | None = None,
                user_id: str | None = None) -> AsyncIterator[ServerSentEventMessage]:
    """Events for ``first`` and each later change of the job, until it finishes.

    Also ends, without an event, once ``stopping`` is set (the process is shutting down),
    and with an ``error`` event once ``allowed`` says the caller may no longer be served
    (asked at every keep-alive and before every change is sent). The stream counts
    against ``user_id``'s limit (default: the job's owner).
    """
    return jobs_changes(watch, [first], user_id=user_id or first.user_id, keepalive=keepalive,
                        stopping=stopping, allowed=allowed, single=True)


async def jobs_changes(watch: JobWatch, firsts: list[Job], *, user_id: str,
                       keepalive: float = KEEPALIVE_SECONDS,
                       stopping: threading.Event | None = None,
                       allowed: Callable[[], Awaitable[bool]] | None = None,
                       single: bool = False) -> AsyncIterator[ServerSentEventMessage]:
    """Events for each job of ``firsts`` and each later change, on one stream, until all
    have finished or gone (``event: gone``). ``single``: the one-job stream, which ends
    with an ``error`` event when its job is deleted."""
    last = {job.id: _state(job) for job in firsts if not job.finished}
    if not last:
        for job in firsts:
            yield job_event(job)
        return
    # Followed (and counted) before the first event, so nothing after it is missed.
    with watch.follow(user_id, list(last)) as following:
        for job in firsts:
            yield job_event(job)
        last_sent = time.monotonic()
        while last:
            try:
                # Wake every second to notice a shutdown.
                job_id, update = await asyncio.wait_for(following.updates.get(),
                                                        timeout=STOP_CHECK_SECONDS)
            except TimeoutError:
                job_id, update = "", None
            if stopping is not None and stopping.is_set():
                return
            if isinstance(update, _Failed):
                yield error_event(update.detail)
                return
            if job_id not in last:
                pass  # finished or gone already; the poll may still have brought it
            elif isinstance(update, _Deleted):
                if single:
                    yield error_event(f"job {job_id} was deleted")
                    return
                del last[job_id]
                watch.drop(following, job_id)
                last_sent = time.monotonic()
                yield gone_event(job_id, f"job {job_id} was deleted")
            elif isinstance(update, Job):
                if _state(update) != last[job_id]:
                    if allowed is not None and not await allowed():
                        yield error_event(SIGNED_OUT)
                        return
                    last[job_id], last_sent = _state(update), time.monotonic()
                    yield job_event(update)
                if update.finished:
                    del last[job_id]
                    watch.drop(following, job_id)
            # Nothing sent for a while (the poll brings unchanged jobs, or nothing): a
            # comment keeps proxies from closing the stream, and the caller is asked for again.
            if last and time.monotonic() - last_sent >= keepalive:
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
    caller: Principal = request.user
    if not first.finished:
        # Refuse now, with a status code, rather than inside a stream already begun.
        watch.check_room(caller.username, f"GET /api/v1/jobs/{first.id}")
    # The caller is looked at again while the stream lasts: a sign-out, a revoked token or
    # a disabled user ends it (within the few seconds the kernel caches who is who).
    return ServerSentEvent(job_changes(watch, first, stopping=state.stopping,
                                       allowed=lambda: still_signed_in(request),
                                       user_id=caller.username))


def followed_ids(given: list[str]) -> list[str]:
    """The job ids of ``?job=`` in order, once each; a 400 in plain words if they are none,
    too many or not job ids."""
    ids = list(dict.fromkeys(given))
    problem = None
    if not ids:
        problem = "name at least one job: ?job=<id>&job=<id>…"
    elif len(ids) > MAX_FOLLOWED:
        problem = (f"a stream follows at most {MAX_FOLLOWED} jobs, this one asks for "
                   f"{len(ids)}; open a stream per {MAX_FOLLOWED} jobs")
    else:
        bad = [job_id for job_id in ids if not _JOB_ID.match(job_id)]
        if bad:
            problem = f"{bad[0][:40]!r} is not a job id (24 lower-case hex digits)"
    if problem:
        raise ValidationException(detail=f"Invalid query parameter job: {problem}",
                                  extra=[{"key": "job", "source": "query", "message": problem}])
    return ids


@get("/events", summary="Follow several jobs live, on one connection", tags=["jobs"],
     responses=responses(400, 401, 404, 429, 503))
async def jobs_events(
    request: Request[Any, Any, Any], client: Client, state: State,
    job: Annotated[list[str] | None, QueryParameter(
        name="job", description=f"Job ids to follow (repeat the parameter), 1 to "
                                f"{MAX_FOLLOWED}.")] = None,
) -> ServerSentEvent:
    """``text/event-stream`` of ``event: job`` (data: the job as JSON, naming it by ``id``)
    for each followed job at once and on every change; ``event: gone`` (data: ``id``,
    ``detail``) for a job that does not exist, is not yours, or was deleted; ``event:
    error`` ends the stream. It ends by itself once every job has finished or gone.

    A 404 (before any event) means none of the jobs is yours; a 429 that this server or
    this user holds as many streams as allowed (one such stream counts once).
    """
    ids = followed_ids(job or [])
    caller: Principal = request.user
    found = {j.id: j for j in await client.get_jobs(ids)
             if caller.admin or j.user_id == caller.username}
    if not found:
        # The same answer for unknown jobs and other users' jobs: ids cannot be probed.
        raise JobNotFoundError("none of these jobs was found" if len(ids) > 1
                               else f"job {ids[0]} not found")
    watch: JobWatch = state.watch
    if any(not j.finished for j in found.values()):
        watch.check_room(caller.username)

    async def events() -> AsyncIterator[ServerSentEventMessage]:
        for job_id in ids:
            if job_id not in found:
                yield gone_event(job_id, f"job {job_id} not found")
        async for event in jobs_changes(watch, [found[i] for i in ids if i in found],
                                        user_id=caller.username, stopping=state.stopping,
                                        allowed=lambda: still_signed_in(request)):
            yield event

    return ServerSentEvent(events())


EVENT_ROUTES = [job_events, jobs_events]
