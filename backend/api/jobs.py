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
from litestar import Request, delete, get, post
from litestar.datastructures import State
from litestar.exceptions import ClientException, PermissionDeniedException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody, Parameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_422_UNPROCESSABLE_ENTITY

from backend.api.bodies import responses, strict
from backend.api.dependencies import AppSettings, Client, JobIdParam, Queue
from backend.api.security import Principal
from backend.api.services import cancel_job, default_executor, delete_job
from backend.api.submit import check_message_size, new_job_id, queue_message
from backend.client import DataServiceClient
from backend.errors import JobNotFoundError
from backend.jobs import (
    Deleted,
    Job,
    JobExecutionRequest,
    JobPage,
    JobStatus,
    NewJob,
    SubmitResponse,
)
from backend.settings import Settings
from backend.tasks import registered_tasks

_TRACE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_SUBMIT = msgspec.json.Decoder(JobExecutionRequest, strict=True)

UserIdQuery = Annotated[
    str | None,
    Parameter(min_length=1, max_length=128, pattern=r"^[^\s/?#]+$",
              description="Admins: whose jobs to list (default: your own)."),
]


def _unprocessable(key: str, source: str, message: str, valid: list[str]) -> ClientException:
    return ClientException(
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        detail=message,
        extra=[{"key": key, "source": source, "message": message, "valid": valid}],
    )


def _invalid(key: str, message: str) -> ValidationException:
    return ValidationException(detail=f"Invalid {key}: {message}",
                               extra=[{"key": key, "message": message, "source": "body"}])


def _check_names(settings: Settings, executor: str, task_name: str) -> None:
    executors = settings.worker.executor_names
    if executor not in executors:
        raise _unprocessable("executor", "query",
                             f"unknown executor {executor[:100]!r}; valid executors: "
                             f"{', '.join(executors)}", executors)
    tasks = [spec.name for spec in registered_tasks()]
    if task_name not in tasks:
        raise _unprocessable("job_name", "body",
                             f"unknown task {task_name!r}; valid tasks: {', '.join(tasks)}",
                             tasks)


async def visible_job(client: DataServiceClient, job_id: str, caller: Principal) -> Job:
    """The job, if the caller may see it; otherwise the same 404 as an unknown job."""
    job = await client.get_job(job_id)
    if job.user_id != caller.username and not caller.admin:
        raise JobNotFoundError(f"job {job_id} not found")
    return job


def job_routes(submit_middleware: list[Any]) -> list[HTTPRouteHandler]:
    """The job routes; the submit route gets ``submit_middleware`` (the rate limit)."""

    @post("/job_executor/async", status_code=HTTP_200_OK, summary="Submit a job",
          tags=["jobs"], middleware=submit_middleware,
          responses=responses(401, 403, 413, 415, 422, 429, 503))
    async def submit(
        request: Request[Principal, Any, Any],
        data: JSONBody[JobExecutionRequest],
        state: State,
        queue: Queue,
        settings: AppSettings,
        executor: Annotated[
            str | None, Parameter(description="Worker pool to run the job; default `standard`.")
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
        caller = request.user
        owner = data.user_id or caller.username
        if owner != caller.username and not caller.admin:
            raise PermissionDeniedException(
                f"user_id {owner!r} is not you ({caller.username}): leave user_id out, or "
                "give your own user name")
        executor = executor or default_executor(settings)
        _check_names(settings, executor, data.job_name)
        limit = settings.worker.max_job_timeout
        if data.estimated_time > limit:
            raise _invalid("estimated_time", f"{data.estimated_time:g} s is over the longest a "
                           f"job may run, {limit} s (MAX_JOB_TIMEOUT)")
        given = request.headers.get("x-trace-id", "")
        trace_id = given if _TRACE_ID.match(given) else uuid.uuid4().hex
        job_id = new_job_id()
        message = queue_message(job_id, data, executor, trace_id)
        check_message_size(message)
        await state.backlog.admit(executor)
        counted = not caller.admin and await state.unfinished.reserve(owner)
        try:
            await state.submitter.submit(NewJob(
                id=job_id, name=data.job_name, user_id=owner, status=JobStatus.QUEUED,
                description=data.description, estimated_time=data.estimated_time,
                params=data.params, executor=executor), message)
        except BaseException:
            if counted:
                await state.unfinished.release(owner)
            raise
        return SubmitResponse(job_id=job_id)

    @get("/jobs/{job_id:str}", summary="Get a job", tags=["jobs"],
         responses=responses(401, 404, 503))
    async def get_job(request: Request[Principal, Any, Any], job_id: JobIdParam,
                      client: Client) -> Job:
        """The job as it is now, for polling."""
        return await visible_job(client, job_id, request.user)

    @get("/jobs", summary="List jobs", tags=["jobs"], responses=responses(401, 403, 503))
    async def list_jobs(
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
    ) -> JobPage:
        """Your jobs, newest first; page with ``cursor`` (or ``offset``). Admins may ask for
        one user's jobs (``user_id``) or everyone's (``all=true``)."""
        caller = request.user
        if (all_users or (user_id and user_id != caller.username)) and not caller.admin:
            raise PermissionDeniedException("only admins may list other users' jobs")
        owner = None if all_users else (user_id or caller.username)
        return await client.list_jobs(owner, status=status, limit=limit, cursor=cursor,
                                      offset=offset)

    @post("/jobs/{job_id:str}/cancel", status_code=HTTP_200_OK, summary="Cancel a job",
          tags=["jobs"], responses=responses(401, 404, 409, 503))
    async def cancel(request: Request[Principal, Any, Any], job_id: JobIdParam, client: Client,
                     settings: AppSettings, state: State) -> Job:
        """Cancel a job that has not finished (409 with ``current_status`` if it has).

        A queued job never starts; a running one is stopped at once.
        """
        job = await visible_job(client, job_id, request.user)
        return await cancel_job(client, state.redis, job, settings.worker.done_ttl)

    @delete("/jobs/{job_id:str}", status_code=HTTP_200_OK, summary="Delete a finished job",
            tags=["jobs"], responses=responses(401, 404, 409, 503))
    async def remove(request: Request[Principal, Any, Any], job_id: JobIdParam,
                     client: Client) -> Deleted:
        """Delete a finished job (409 if it has not finished: cancel it first)."""
        job = await visible_job(client, job_id, request.user)
        await delete_job(client, job)
        return Deleted(message=f"Job {job_id} deleted.")

    return [submit, get_job, list_jobs, cancel, remove]
