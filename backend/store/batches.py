"""The data service's batch routes: what the kernel and the recorder call per batch.

* ``POST /jobs/bulk``: record up to 1,000 jobs under ids the caller chose (one insert);
* ``POST /jobs/query``: read up to 1,000 jobs by id (one query; live event streams);
* ``POST /reports``: apply a batch of worker reports (one ``bulk_write``).
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK
from msgspec import Meta, Struct

from backend.jobs import NEW_JOB_STATUSES, Job, JobId, JobStatus, NewJobs, NewJobsAnswer
from backend.reports import ReportBatch, ReportsApplied
from backend.storable import check_storable
from backend.store import collection
from backend.store.reports import apply_reports
from backend.store.trail import note_applied
from backend.web import invalid

MAX_REPORTS_BODY = 8 * 1024 * 1024


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
        return NewJobsAnswer(results=await collection.insert_jobs(data.jobs))

    @post("/jobs/query", status_code=HTTP_200_OK, summary="Jobs by id")
    async def query_jobs(self, data: JSONBody[JobQuery]) -> list[Job]:
        """The jobs of those ids that exist, in no particular order."""
        return await collection.find_jobs(data.ids)

    @post("/reports", status_code=HTTP_200_OK, summary="Apply a batch of worker reports",
          request_max_body_size=MAX_REPORTS_BODY)
    async def reports(self, data: JSONBody[ReportBatch]) -> ReportsApplied:
        """Each report is applied only if the job's status and attempt count allow it
        (see backend/reports.py); a late, repeated or out-of-order one changes nothing."""
        applied = await apply_reports(collection.collection(), data.reports)
        note_applied(data.reports)
        return applied
