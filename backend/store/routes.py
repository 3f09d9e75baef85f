"""The data service's job routes (CRUD, a user's list, stale ones, the batch routes) and
its health probes.

The batch routes are what the kernel and the recorder call per batch:

* ``POST /jobs/bulk``: record up to 1,000 jobs under ids the caller chose (one insert);
* ``POST /jobs/query``: read up to 1,000 jobs by id (one query; live event streams);
* ``POST /reports``: apply a batch of worker reports (one ``bulk_write``).

Reads are in :mod:`backend.store.job_reads`, writes in :mod:`backend.store.job_writes`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, Parameter
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_201_CREATED,
    HTTP_409_CONFLICT,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from msgspec import UNSET, Meta, Struct
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from backend.errors import JobNotFoundError
from backend.jobs import (
    NEW_JOB_STATUSES,
    TERMINAL_STATUSES,
    CreateJob,
    Deleted,
    Job,
    JobCreated,
    JobId,
    JobPage,
    JobStatus,
    JobSummaryPage,
    NewJobs,
    NewJobsAnswer,
    UpdateJob,
    UserId,
)
from backend.problems import PROBLEM_JSON, Problem
from backend.reports import ReportBatch, ReportsApplied
from backend.storable import check_storable
from backend.store import job_reads, job_writes
from backend.store.guards import PUBLIC
from backend.store.trail import note_applied
from backend.web import invalid, problem

log = logging.getLogger("backend.store")


def _path_parameter(annotated: Any) -> Any:
    """A path parameter constrained like the wire type ``annotated`` of backend.jobs.

    Litestar reads constraints of parameters from ``Parameter``, not from msgspec's
    ``Meta``, so copy them over: one declaration, and the OpenAPI schema shows them.
    """
    meta: Meta = annotated.__metadata__[0]
    return Annotated[str, Parameter(pattern=meta.pattern, min_length=meta.min_length,
                                    max_length=meta.max_length, description=meta.description)]


JobIdParam = _path_parameter(JobId)
UserIdParam = _path_parameter(UserId)
_STATUSES = [str(status) for status in JobStatus]
# A finished job never changes again, so "stale" only means something before that.
_UNFINISHED = [str(status) for status in JobStatus if status not in TERMINAL_STATUSES]
MAX_OFFSET = 1_000_000

LimitParam = Annotated[int, Parameter(ge=1, le=100, description="Page size.")]
CursorParam = Annotated[str | None, Parameter(
    max_length=200, description="next_cursor of the previous page.")]
OffsetParam = Annotated[int | None, Parameter(
    ge=0, le=MAX_OFFSET, description="Items to skip (instead of a cursor).")]
StatusParam = Annotated[str | None, Parameter(
    description="Only jobs in this status.", schema_extra={"enum": _STATUSES})]
SummaryParam = Annotated[bool, Parameter(
    description="Answer the jobs as a list shows them (JobSummary: no params, no result, "
                "the error cut short).")]
MAX_STALE_AGE = 366 * 24 * 3600
MAX_STALE_LIMIT = 1000
MAX_REPORTS_BODY = 8 * 1024 * 1024


class JobController(Controller):
    """One job by id, and the jobs of one user."""

    path = "/job"
    tags = ["jobs"]

    @post("/", status_code=HTTP_201_CREATED, summary="Record a new job (status created)")
    async def create_job(self, data: JSONBody[CreateJob]) -> JobCreated:
        """Also takes the seed's Job body, whose ``status`` must then be ``created``."""
        if data.status is not None and data.status != JobStatus.CREATED:
            raise invalid("status", f"a new job is always created with status \"created\" "
                          f"(the only status accepted on create), not {data.status[:50]!r}")
        check_storable("params", data.params)
        job = await job_writes.create_job(data)
        return JobCreated(id=job.id)

    @get("/{job_id:str}", summary="One job")
    async def get_job(self, job_id: JobIdParam) -> Job:
        job = await job_reads.find_job(job_id)
        if job is None:
            raise JobNotFoundError(f"Job {job_id} not found.")
        return job

    @get("/stale", summary="Jobs of every user stuck in one status, oldest first")
    async def stale_jobs(
        self,
        status: Annotated[str, Parameter(
            description="Only jobs in this (unfinished) status.",
            schema_extra={"enum": _UNFINISHED})],
        older_than: Annotated[float, Parameter(
            ge=0, le=MAX_STALE_AGE,
            description="Only jobs whose updated_at is more than this many seconds ago "
                        "(measured on this service's clock).")],
        limit: Annotated[int, Parameter(
            ge=1, le=MAX_STALE_LIMIT, description="Most jobs answered.")] = 100,
    ) -> list[Job]:
        """For sweeps: e.g. jobs left ``created`` by a kernel that died before queueing them.

        Ordered by ``updated_at``, least recently updated first; ``scheduled`` jobs by
        ``run_at``, soonest due first.
        """
        if status not in _UNFINISHED:
            raise invalid("status", f"{status[:50]!r} is not an unfinished status; valid: "
                          f"{', '.join(_UNFINISHED)}", "query")
        return await job_reads.stale_jobs(JobStatus(status), older_than=older_than, limit=limit)

    @get("/user/{user_id:str}", summary="A user's jobs, newest first (the user id in the path)")
    async def list_jobs(
        self,
        user_id: UserIdParam,
        limit: LimitParam = 20,
        cursor: CursorParam = None,
        offset: OffsetParam = None,
        status: StatusParam = None,
        summary: SummaryParam = False,
    ) -> JobPage | JobSummaryPage:
        """The same as ``GET /jobs?user_id=``; kept for clients of the first version."""
        return await _page(user_id, limit, cursor, offset, status, summary)

    @put("/{job_id:str}", summary="Update a job; an illegal status move is a 409",
         responses={HTTP_409_CONFLICT: ResponseSpec(
             Problem, description="The job's current status does not allow the change.",
             media_type=PROBLEM_JSON)})
    async def update_job(self, job_id: JobIdParam, data: JSONBody[UpdateJob]) -> Job:
        if data.result is not UNSET:
            check_storable("result", data.result)
        return await job_writes.update_job(job_id, data)

    @delete("/{job_id:str}", status_code=HTTP_200_OK, summary="Delete a job")
    async def delete_job(self, job_id: JobIdParam) -> Deleted:
        await job_writes.delete_job(job_id)
        return Deleted(message=f"Job {job_id} deleted.")


@get("/jobs", tags=["jobs"], summary="A user's jobs (or every user's), newest first")
async def list_user_jobs(
    user_id: Annotated[str | None, Parameter(
        min_length=1, max_length=128,
        description="Owner of the jobs; absent: every user's jobs.")] = None,
    limit: LimitParam = 20,
    cursor: CursorParam = None,
    offset: OffsetParam = None,
    status: StatusParam = None,
    summary: SummaryParam = False,
) -> JobPage | JobSummaryPage:
    """Page with ``next_cursor`` (or ``offset``). The user id is a query value, so any id,
    ``..`` included, names a user and never a path. ``summary=true``: the jobs as a list
    shows them (what the kernel's list asks for)."""
    return await _page(user_id, limit, cursor, offset, status, summary)


class UnfinishedCount(Struct):
    count: int


@get("/jobs/unfinished/count", tags=["jobs"], summary="How many jobs of a user are unfinished")
async def count_unfinished(
    user_id: Annotated[str, Parameter(min_length=1, max_length=128)],
) -> UnfinishedCount:
    """For the kernel's MAX_UNFINISHED_JOBS_PER_USER."""
    return UnfinishedCount(count=await job_reads.count_unfinished(user_id))


async def _page(user_id: str | None, limit: int, cursor: str | None, offset: int | None,
                status: str | None, summary: bool = False) -> JobPage | JobSummaryPage:
    if status is not None and status not in _STATUSES:
        raise invalid("status", f"unknown status {status[:50]!r}; valid: "
                      f"{', '.join(_STATUSES)}", "query")
    if cursor is not None and offset is not None:
        raise invalid("cursor", "give either cursor or offset, not both", "query")
    return await job_reads.list_jobs(
        user_id, status=JobStatus(status) if status else None, limit=limit,
        cursor=cursor, offset=offset, summary=summary,
    )


@delete("/jobs/{job_id:str}", status_code=HTTP_200_OK, tags=["jobs"],
        summary="Delete a job (the seed's path)")
async def delete_job_seed_path(job_id: JobIdParam) -> Deleted:
    await job_writes.delete_job(job_id)
    return Deleted(message=f"Job {job_id} deleted.")


class JobQuery(Struct, forbid_unknown_fields=True):
    """Body of ``POST /jobs/query``."""

    ids: Annotated[list[JobId], Meta(max_length=1000)]


class BatchController(Controller):
    tags = ["batches"]

    @post("/jobs/bulk", status_code=HTTP_200_OK, summary="Record jobs under ids the caller chose")
    async def create_jobs(self, data: JSONBody[NewJobs]) -> NewJobsAnswer:
        """Each job is recorded once: sending one again (say after a timeout) answers
        ``exists`` for it. A job may start ``created``, ``queued`` or ``scheduled`` (with its
        ``run_at``)."""
        for index, job in enumerate(data.jobs):
            if job.status not in NEW_JOB_STATUSES:
                raise invalid(f"jobs[{index}].status", f"a new job is created, queued or "
                              f"scheduled, not {job.status}")
            if job.status is JobStatus.SCHEDULED and job.run_at is None:
                raise invalid(f"jobs[{index}].run_at", "a scheduled job needs its run_at")
            check_storable(f"jobs[{index}].params", job.params)
        return NewJobsAnswer(results=await job_writes.insert_jobs(data.jobs))

    @post("/jobs/query", status_code=HTTP_200_OK, summary="Jobs by id")
    async def query_jobs(self, data: JSONBody[JobQuery]) -> list[Job]:
        """The jobs of those ids that exist, in no particular order."""
        return await job_reads.find_jobs(data.ids)

    @post("/reports", status_code=HTTP_200_OK, summary="Apply a batch of worker reports",
          request_max_body_size=MAX_REPORTS_BODY)
    async def reports(self, data: JSONBody[ReportBatch]) -> ReportsApplied:
        """Each report is applied only if the job's status and attempt count allow it
        (see backend/reports.py); a late, repeated or out-of-order one changes nothing."""
        applied = await job_writes.apply_reports(data.reports)
        note_applied(data.reports)
        return applied


@get("/healthz", tags=["health"], summary="The process is up", opt={PUBLIC: True})
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["health"], summary="MongoDB answers a ping", opt={PUBLIC: True})
async def readyz(request: Request) -> Response[Any]:
    client: AsyncMongoClient = request.app.state.mongo_client
    try:
        await asyncio.wait_for(client.admin.command("ping"), timeout=2.0)
    except (PyMongoError, TimeoutError) as exc:
        log.warning("not ready: MongoDB did not answer a ping: %s", exc)
        return problem(request, HTTP_503_SERVICE_UNAVAILABLE,
                       "not ready: MongoDB did not answer a ping",
                       checks={"mongodb": "not answering"})
    return Response({"status": "ok"})
