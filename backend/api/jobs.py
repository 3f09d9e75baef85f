"""Routes of one job's life: submit, poll, list, cancel, delete.

The owner of a job is whoever submitted it (``request.user``). A job of another user is
a 404 on every route, exactly as a job that does not exist, so ids cannot be probed;
admins see every job.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, Router, delete, get, post
from litestar.datastructures import State
from litestar.exceptions import (
    ClientException,
    HTTPException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.openapi import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, Parameter, QueryParameter
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_207_MULTI_STATUS,
    HTTP_400_BAD_REQUEST,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
)
from litestar.types import ControllerRouterHandler

from backend.api.bodies import responses, strict
from backend.api.dependencies import AppSettings, Client, JobIdParam, Queue
from backend.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from backend.api.idempotency import IdempotencyKeys, check_key, request_hash
from backend.api.scheduling import submit_options
from backend.api.security import Principal
from backend.api.services import cancel_job, default_executor, delete_job
from backend.api.submit import check_message_size, new_job_id, queue_message
from backend.errors import (
    JobNotFoundError,
    MessageTooLargeError,
    SubmitError,
    TransitionError,
    UnstorableValueError,
)
from backend.jobs import (
    MAX_BATCH_JOBS,
    BatchItemResult,
    BatchJobRequest,
    BatchResponse,
    Deleted,
    Job,
    JobExecutionRequest,
    JobStatus,
    JobSummaryPage,
    NewJob,
    QueueMessage,
    SubmitResponse,
)
from backend.queues import MAX_MESSAGE_BYTES
from backend.settings import Settings
from backend.storable import check_storable
from backend.store.client import DataServiceClient
from backend.tasks import registered_tasks
from backend.web import (
    FieldError,
    field_errors,
    invalid,
    plain_validation,
    status_title,
    unprocessable,
)

_TRACE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_SUBMIT = msgspec.json.Decoder(JobExecutionRequest, strict=True)
_BATCH_ITEM = msgspec.json.Decoder(BatchJobRequest, strict=True)


class _BatchEnvelope(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /jobs/batch`` before its items are looked at: each is checked on its own."""

    jobs: list[msgspec.Raw]


_BATCH = msgspec.json.Decoder(_BatchEnvelope, strict=True)

UserIdQuery = Annotated[
    str | None,
    Parameter(min_length=1, max_length=128, pattern=r"^[^\s/?#]+$",
              description="Admins: whose jobs to list (default: your own)."),
]


def _check_names(settings: Settings, executor: str, task_name: str) -> None:
    executors = settings.worker.executor_names
    if executor not in executors:
        raise unprocessable("executor", f"unknown executor {executor[:100]!r}; valid "
                            f"executors: {', '.join(executors)}", in_="query")
    tasks = [spec.name for spec in registered_tasks()]
    if task_name not in tasks:
        raise unprocessable("job_name",
                            f"unknown task {task_name!r}; valid tasks: {', '.join(tasks)}")


def trace_id_of(request: Request[Any, Any, Any]) -> str:
    """The caller's ``X-Trace-Id`` if it is well formed, else a new one."""
    given = request.headers.get("x-trace-id", "")
    return given if _TRACE_ID.match(given) else uuid.uuid4().hex


def prepare_job(data: JobExecutionRequest, *, executor: str | None, caller: Principal,
                settings: Settings, trace_id: str,
                rerun_of: str | None = None) -> tuple[NewJob, QueueMessage]:
    """The one place a submit's body becomes a job and its queue message (single submits,
    each item of a batch, re-runs): checks what the types cannot (whose job, known task
    and executor, limits, params the job store can hold) and raises the 4xx of the first
    problem. Nothing is recorded."""
    owner = data.user_id or caller.username
    if owner != caller.username and not caller.admin:
        raise PermissionDeniedException(
            f"user_id {owner!r} is not you ({caller.username}): leave user_id out, or "
            "give your own user name", extra={"key": "user_id"})
    executor = executor or default_executor(settings)
    _check_names(settings, executor, data.job_name)
    limit = settings.worker.max_job_timeout
    if data.estimated_time is not None and data.estimated_time > limit:
        raise invalid("estimated_time", f"{data.estimated_time:g} s is over the longest a "
                       f"job may run, {limit} s (MAX_JOB_TIMEOUT)")
    try:  # the store's own check: a job it would refuse must never join a group commit
        check_storable("params", data.params)
    except UnstorableValueError as exc:
        raise invalid(exc.field, exc.message) from exc
    options = submit_options(data, settings)  # run_at/delay and callback_url
    job_id = new_job_id()
    message = queue_message(job_id, data, executor, trace_id, run_at=options.run_at,
                            callback=options.callback_url is not None)
    check_message_size(message)
    job = NewJob(id=job_id, name=data.job_name, user_id=owner, status=options.status,
                 description=data.description, estimated_time=data.estimated_time,
                 params=data.params, executor=executor, rerun_of=rerun_of,
                 run_at=options.run_at, callback_url=options.callback_url)
    return job, message


async def record_jobs(state: State, caller: Principal,
                      jobs: list[tuple[NewJob, QueueMessage]]) -> None:
    """Admit, record and queue prepared jobs together (one data service call). Raises
    :class:`OverloadedError` (429, nothing recorded) or :class:`SubmitError` (503, the
    jobs are void)."""
    for executor in dict.fromkeys(job.executor for job, _ in jobs):
        await state.backlog.admit(executor)
    places = len(jobs)
    counted = not caller.admin and await state.unfinished.reserve(caller.username, places)
    try:
        await state.submitter.submit_many(jobs)
    except BaseException:
        if counted:
            await state.unfinished.release(caller.username, places)
        raise


def _refusal(index: int, exc: Exception) -> BatchItemResult:
    """Why one item of a batch was refused, as the single submit would have answered."""
    if isinstance(exc, MessageTooLargeError):
        status = HTTP_413_REQUEST_ENTITY_TOO_LARGE
        return BatchItemResult(index=index, status=status, title=status_title(status),
                               detail=str(exc), limit_bytes=MAX_MESSAGE_BYTES,
                               errors=[FieldError(field="params", message=str(exc))])
    assert isinstance(exc, HTTPException)
    if isinstance(exc, ValidationException):
        detail, problems = plain_validation(exc.extra, str(exc.detail))
    else:
        detail = str(exc.detail)
        problems = field_errors(exc.extra, detail)
    return BatchItemResult(index=index, status=exc.status_code,
                           title=status_title(exc.status_code), detail=detail, errors=problems)


async def visible_job(client: DataServiceClient, job_id: str, caller: Principal) -> Job:
    """The job, if the caller may see it; otherwise the same 404 as an unknown job."""
    job = await client.get_job(job_id)
    if job.user_id != caller.username and not caller.admin:
        raise JobNotFoundError(f"job {job_id} not found")
    return job


class SubmitController(Controller):
    """The routes that create jobs (each counts in SUBMIT_RATE_LIMIT: see :func:`job_routes`)."""

    @post("/job_executor/async", status_code=HTTP_200_OK, summary="Submit a job",
          tags=["jobs"], responses=responses(401, 403, 413, 415, 422, 429, 503))
    async def submit(
        self,
        request: Request[Principal, Any, Any],
        data: JSONBody[JobExecutionRequest],
        state: State,
        queue: Queue,
        settings: AppSettings,
        executor: Annotated[
            str | None, Parameter(description="Worker pool to run the job; default `standard`.")
        ] = None,
        idempotency_key: Annotated[str | None, HeaderParameter(
            name=IDEMPOTENCY_HEADER, required=False,
            description="Makes retries safe: the same key (1 to 128 printable ASCII "
                        "characters) from the same user within IDEMPOTENCY_TTL answers the "
                        "first job's id and creates nothing; with another body, a 422.")
        ] = None,
    ) -> SubmitResponse:
        """Record the job, put it on the STANDARD queue, and answer with its id.

        The job belongs to the caller; ``user_id`` may be left out (an admin may name
        another user). The job is ``queued`` when this answers 200. A 429 (with
        ``Retry-After``) means a limit was reached or too much work waits; nothing was
        recorded. A 503 names the job: it was not recorded, or it is marked failed, and it
        will never run.
        """
        del queue  # resolving it retries creating the queue, if that failed at start
        strict(_SUBMIT, await request.body())
        key = check_key(idempotency_key)
        caller = request.user
        job, message = prepare_job(data, executor=executor, caller=caller, settings=settings,
                                   trace_id=trace_id_of(request))
        if job.callback_url:
            await state.webhook_owners.require(job.user_id)
        if key is None:
            await record_jobs(state, caller, [(job, message)])
            return SubmitResponse(job_id=job.id)
        keys: IdempotencyKeys = state.idempotency
        async with keys.claim(caller.username, key, request_hash(data, executor),
                              job.id) as outcome:
            if not outcome.replay:
                await record_jobs(state, caller, [(job, message)])
        return SubmitResponse(job_id=outcome.job_id)

    @post("/jobs/batch", status_code=HTTP_200_OK, summary="Submit up to 100 jobs at once",
          tags=["jobs"], responses={207: ResponseSpec(BatchResponse, description=(
              "Some items were refused: each refused item is a problem (`status` 400, 403, "
              "413 or 422, `title`, `detail`, `errors`); the others were recorded and "
              "queued.")),
              **responses(400, 401, 413, 415, 429, 503)})
    async def submit_batch(
        self,
        request: Request[Principal, Any, Any],
        state: State,
        queue: Queue,
        settings: AppSettings,
        executor: Annotated[
            str | None, Parameter(description="Worker pool of the items that name none; "
                                              "default `standard`.")
        ] = None,
    ) -> Response[BatchResponse]:
        """Submit 1 to 100 jobs: body ``{"jobs": [JobExecutionRequest + optional
        "executor", ...]}``.

        Each item is checked as a single submit would be; the valid ones are recorded with
        one data service call and queued with the queue's batch send. The answer has one
        result per item, in order: ``{"index", "job_id"}`` or ``{"index", "status", "title",
        "detail", "errors"}``; HTTP 200 when every item was accepted, 207 otherwise. The
        request counts once in SUBMIT_RATE_LIMIT and takes one place per accepted job in
        MAX_UNFINISHED_JOBS_PER_USER; a 429 or a 503 applies to every item.
        """
        del queue
        body = strict(_BATCH, await request.body())
        if not body.jobs or len(body.jobs) > MAX_BATCH_JOBS:
            message = (f"a batch holds 1 to {MAX_BATCH_JOBS} jobs, this one "
                       f"{len(body.jobs)}; send more in several batches")
            problem = {"key": "jobs", "message": message, "source": "body",
                       "max_items": MAX_BATCH_JOBS, "items": len(body.jobs)}
            status = HTTP_413_REQUEST_ENTITY_TOO_LARGE if body.jobs else HTTP_400_BAD_REQUEST
            raise ClientException(status_code=status, detail=f"Invalid request body field "
                                  f"jobs: {message}", extra=[problem])
        caller = request.user
        trace_id = trace_id_of(request)
        results: list[BatchItemResult] = []
        accepted: list[tuple[NewJob, QueueMessage]] = []
        for index, raw in enumerate(body.jobs):
            try:
                item: BatchJobRequest = strict(_BATCH_ITEM, raw)
                job, message = prepare_job(item, executor=item.executor or executor,
                                           caller=caller, settings=settings,
                                           trace_id=trace_id)
                if job.callback_url:
                    await state.webhook_owners.require(job.user_id)
            except (HTTPException, MessageTooLargeError) as exc:
                results.append(_refusal(index, exc))
                continue
            accepted.append((job, message))
            results.append(BatchItemResult(index=index, job_id=job.id))
        if accepted:
            try:
                await record_jobs(state, caller, accepted)
            except SubmitError as exc:
                ids = [job.id for job, _ in accepted]
                reason = str(exc).split(": ", 1)[-1]
                raise SubmitError(f"none of the {len(ids)} valid jobs of the batch was "
                                  f"submitted: {reason}", ids[0], ids) from exc
        refused = len(results) - len(accepted)
        return Response(BatchResponse(results=results, accepted=len(accepted), refused=refused),
                        status_code=HTTP_200_OK if not refused else HTTP_207_MULTI_STATUS)

    @post("/jobs/{job_id:str}/rerun", status_code=HTTP_200_OK, summary="Re-run a finished job",
          tags=["jobs"], responses=responses(401, 404, 409, 422, 429, 503))
    async def rerun(self, request: Request[Principal, Any, Any], job_id: JobIdParam,
                    client: Client, state: State, queue: Queue,
                    settings: AppSettings) -> SubmitResponse:
        """Submit a new job with the same task, executor, params, description and
        estimated_time as a finished job (``rerun_of`` names it). 409 (with
        ``current_status``) if that job has not finished; 404 if it is not yours. The new
        job is the original's owner's."""
        del queue
        original = await visible_job(client, job_id, request.user)
        if not original.finished:
            raise TransitionError(
                f"job {job_id} is {original.status}: only a finished job (succeeded, failed "
                "or cancelled) can be re-run; cancel it first, or wait", original.status)
        data = JobExecutionRequest(
            job_name=original.name, estimated_time=original.estimated_time,  # type: ignore[arg-type]
            user_id=original.user_id, description=original.description, params=original.params)
        job, message = prepare_job(data, executor=original.executor, caller=request.user,
                                   settings=settings, trace_id=trace_id_of(request),
                                   rerun_of=original.id)
        await record_jobs(state, request.user, [(job, message)])
        return SubmitResponse(job_id=job.id)


class JobController(Controller):
    """The routes that read, cancel and delete jobs."""

    @get("/jobs/{job_id:str}", summary="Get a job", tags=["jobs"],
         responses=responses(401, 404, 503))
    async def get_job(self, request: Request[Principal, Any, Any], job_id: JobIdParam,
                      client: Client) -> Job:
        """The job as it is now, for polling."""
        return await visible_job(client, job_id, request.user)

    @get("/jobs", summary="List jobs", tags=["jobs"], responses=responses(401, 403, 503))
    async def list_jobs(
        self,
        request: Request[Principal, Any, Any],
        client: Client,
        user_id: UserIdQuery = None,
        all_users: Annotated[bool, QueryParameter(
            name="all", description="Admins: every user's jobs.")] = False,
        status: Annotated[JobStatus | None, Parameter(description="Only jobs in this status.")]
        = None,
        limit: Annotated[int, Parameter(ge=1, le=100, description="Page size.")] = 20,
        cursor: Annotated[
            str | None,
            Parameter(max_length=200, description="next_cursor of the previous page."),
        ] = None,
        offset: Annotated[int | None, Parameter(ge=0, description="Jobs to skip.")] = None,
    ) -> JobSummaryPage:
        """Your jobs, newest first; page with ``cursor`` (or ``offset``). Admins may ask for
        one user's jobs (``user_id``) or everyone's (``all=true``). Each item is what a list
        shows (no params, no result, the error cut to 200 characters); ``GET
        /api/v1/jobs/{id}`` has the whole job."""
        caller = request.user
        if (all_users or (user_id and user_id != caller.username)) and not caller.admin:
            raise PermissionDeniedException("only admins may list other users' jobs")
        owner = None if all_users else (user_id or caller.username)
        return await client.list_summaries(owner, status=status, limit=limit, cursor=cursor,
                                           offset=offset)

    @post("/jobs/{job_id:str}/cancel", status_code=HTTP_200_OK, summary="Cancel a job",
          tags=["jobs"], responses=responses(401, 404, 409, 503))
    async def cancel(self, request: Request[Principal, Any, Any], job_id: JobIdParam,
                     client: Client, settings: AppSettings, state: State) -> Job:
        """Cancel a job that has not finished (409 with ``current_status`` if it has).

        A queued job never starts; a running one is stopped at once.
        """
        job = await visible_job(client, job_id, request.user)
        return await cancel_job(client, state.redis, job, settings.worker.done_ttl,
                                rq=state.rq_redis, rq_keep=settings.worker.rq_failure_ttl)

    @delete("/jobs/{job_id:str}", status_code=HTTP_200_OK, summary="Delete a finished job",
            tags=["jobs"], responses=responses(401, 404, 409, 503))
    async def remove(self, request: Request[Principal, Any, Any], job_id: JobIdParam,
                     client: Client) -> Deleted:
        """Delete a finished job (409 if it has not finished: cancel it first)."""
        job = await visible_job(client, job_id, request.user)
        await delete_job(client, job)
        return Deleted(message=f"Job {job_id} deleted.")


def job_routes(submit_middleware: list[Any]) -> list[ControllerRouterHandler]:
    """The job routes; the submitting ones behind ``submit_middleware`` (the rate limit)."""
    return [Router("/", route_handlers=[SubmitController], middleware=submit_middleware),
            JobController]
