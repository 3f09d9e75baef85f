"""Every write of the job collection: new jobs, status changes, deletes.

A status change is a conditional update whose filter only matches a job whose current
status may move to the target (:func:`backend.jobs.sources_of`, or for a worker report
:func:`backend.reports.report_rule`, through :func:`backend.store.documents.status_filter`),
so of two racing writers at most one can win, a replayed report changes nothing, and a
finished job never moves back. Two paths write one:

* ``PUT /job/{id}`` (:func:`update_job`): one ``find_one_and_update``; when the filter
  misses, a re-read tells "no such job" (404) from "illegal move" (409). (A move to
  ``running`` takes two such writes: one that enters ``running`` and sets started_at, and
  one for a repeated ``running`` report, which keeps it.)
* ``POST /reports`` (:func:`apply_reports`): a batch of worker reports in one ordered
  ``bulk_write``. Reports of one job that follow each other within a batch and belong to
  the same attempt are folded into one write (a short job's ``running``, progress and end
  become a single update), which is what makes a batch cheap; each write's filter is the
  report's rule on the job's status and attempt count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from msgspec import UNSET
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError

from backend.errors import TransitionError, UnstorableValueError
from backend.jobs import (
    TERMINAL_STATUSES,
    CreateJob,
    Job,
    JobStatus,
    NewJob,
    UpdateJob,
    can_move,
    sources_of,
    utcnow,
)
from backend.reports import AttemptGuard, Report, ReportsApplied, report_rule
from backend.storable import check_storable
from backend.store.documents import (
    UNFINISHED,
    collection,
    new_document,
    status_filter,
    to_job,
)
from backend.store.job_reads import get_job, not_found, object_id

DUPLICATE_KEY = 11000
_ATTEMPTS = 3


# -- new jobs ------------------------------------------------------------------------------
async def create_job(data: CreateJob) -> Job:
    """Store a new job in status ``created`` under a fresh id."""
    document = new_document(
        now=utcnow(), name=data.name, user_id=data.user_id, description=data.description,
        estimated_time=data.estimated_time, params=data.params, executor=data.executor)
    await collection().insert_one(document)
    return to_job(document)


async def insert_jobs(jobs: Sequence[NewJob]) -> list[str]:
    """Insert the jobs in one write; per job ``created``, or ``exists`` if that id was
    recorded before (the same job sent again)."""
    now = utcnow()
    results = ["created"] * len(jobs)
    documents = [new_document(
        now=now, job_id=job.id, name=job.name, user_id=job.user_id, status=job.status,
        description=job.description, estimated_time=job.estimated_time, params=job.params,
        executor=job.executor, rerun_of=job.rerun_of, run_at=job.run_at,
        callback_url=job.callback_url) for job in jobs]
    try:
        await collection().insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        for error in exc.details.get("writeErrors", []):
            if error.get("code") != DUPLICATE_KEY:
                raise
            results[error["index"]] = "exists"
    return results


# -- PUT /job/{id} -------------------------------------------------------------------------
async def _find_and_set(oid: ObjectId, statuses: frozenset[JobStatus],
                        changes: dict[str, Any]) -> dict[str, Any] | None:
    return await collection().find_one_and_update(
        {"_id": oid, **status_filter(statuses)},
        {"$set": changes},
        return_document=ReturnDocument.AFTER,
    )


async def _apply(oid: ObjectId, target: JobStatus | None,
                 changes: dict[str, Any]) -> dict[str, Any] | None:
    now = utcnow()
    changes = {**changes, "updated_at": now}
    if target is None:
        return await _find_and_set(oid, UNFINISHED, changes)
    sources = frozenset(sources_of(target))
    changes["status"] = str(target)
    if target in TERMINAL_STATUSES:
        changes["finished_at"] = now
    if target is not JobStatus.RUNNING:
        return await _find_and_set(oid, sources, changes)
    # started_at marks the start of the current attempt: set it on entering `running`,
    # not on a repeated `running` report (progress, a redelivered message).
    entering = sources - {JobStatus.RUNNING}
    doc = await _find_and_set(oid, entering, {**changes, "started_at": now})
    if doc is None:
        doc = await _find_and_set(oid, frozenset({JobStatus.RUNNING}), changes)
    return doc


async def update_job(job_id: str, update: UpdateJob) -> Job:
    """Apply ``update`` atomically.

    Raises :class:`JobNotFoundError`, or :class:`TransitionError` (with the current
    status) when the job's status does not allow the move or the job is finished.
    """
    oid = object_id(job_id)
    changes = update.fields_set()
    target = JobStatus(changes.pop("status")) if "status" in changes else None
    if target is None and not changes:
        return await get_job(job_id)
    for _ in range(_ATTEMPTS):
        doc = await _apply(oid, target, changes)
        if doc is not None:
            return to_job(doc)
        found = await collection().find_one({"_id": oid}, {"status": 1})
        if found is None:
            raise not_found(job_id)
        current = JobStatus(found["status"])
        # The filter missed because of the status we just read, unless another writer
        # moved the job in between to a status the move is legal from: then try again.
        allowed = current not in TERMINAL_STATUSES if target is None else can_move(
            current, target)
        if not allowed:
            wanted = f"to {target}" if target is not None else "once finished"
            raise TransitionError(
                f"Job {job_id} is {current}: it cannot change {wanted}.", str(current))
    raise TransitionError(f"Job {job_id} kept changing; try again.", str(current))


async def delete_job(job_id: str) -> None:
    """Remove the job, or raise :class:`JobNotFoundError`."""
    result = await collection().delete_one({"_id": object_id(job_id)})
    if result.deleted_count == 0:
        raise not_found(job_id)


# -- POST /reports -------------------------------------------------------------------------
_GUARD = {AttemptGuard.NEWER: "$lt", AttemptGuard.SAME: "$eq", AttemptGuard.NOT_OLDER: "$lte"}


@dataclass
class _Write:
    """What one job's consecutive reports of one attempt add up to."""

    job_id: str
    attempt: int
    status: JobStatus | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    progress: float | None = None  # the highest progress reported
    callback: bool = False  # the job has a callback URL (its end report says so)

    def absorb(self, report: Report) -> None:
        self.callback = self.callback or report.callback
        if report.progress is not None:
            self.progress = max(self.progress or 0.0, report.progress)
        if report.status is None:
            return
        if report.status is JobStatus.RUNNING and self.status is not None:
            return  # a repeated `running` adds nothing
        self.status = report.status
        if report.worker_id is not None:
            self.fields["worker_id"] = report.worker_id
        if report.status is JobStatus.RUNNING:
            self.fields["started_at"] = report.at
            self.progress = report.progress or 0.0
            return
        if report.started_at is not None:
            self.fields["started_at"] = report.started_at
        if report.error is not None:
            self.fields["error"] = report.error
        if report.final:
            self.fields["finished_at"] = report.at
        if report.status is JobStatus.SUCCEEDED:
            self.fields["result"] = None if report.result is UNSET else report.result
            self.fields["error"] = None
            self.progress = 100.0

    def operation(self, now: datetime) -> UpdateOne:
        rule = report_rule(self.status)
        condition = {
            "_id": ObjectId(self.job_id),
            **status_filter(rule.statuses),
            "attempts": {_GUARD[rule.attempts]: self.attempt},
        }
        changes: dict[str, Any] = {"updated_at": now}
        if self.status is None:
            return UpdateOne(condition, {"$set": changes, "$max": {"progress": self.progress}})
        changes.update(self.fields, status=str(self.status), attempts=self.attempt)
        if self.progress is not None:
            changes["progress"] = self.progress
        return UpdateOne(condition, {"$set": changes})


def _storable(report: Report) -> tuple[Report, str | None]:
    """The report, or a ``failed`` one in its place if its result cannot be stored."""
    if report.status is not JobStatus.SUCCEEDED or report.result is UNSET:
        return report, None
    try:
        check_storable("result", report.result)
    except UnstorableValueError as exc:
        error = f"the task's result cannot be stored: {exc}"
        failed = Report(job_id=report.job_id, attempt=report.attempt, at=report.at,
                        status=JobStatus.FAILED, error=error, worker_id=report.worker_id,
                        started_at=report.started_at, progress=report.progress,
                        callback=report.callback)
        return failed, f"job {report.job_id}: {error}"
    return report, None


def plan(reports: list[Report]) -> tuple[list[_Write], list[str]]:
    """Fold the batch into writes (per job, in order); also says which results were refused."""
    writes: list[_Write] = []
    open_write: dict[str, _Write] = {}  # the job's last write, while it may still absorb
    refused: list[str] = []
    for original in reports:
        report, problem = _storable(original)
        if problem:
            refused.append(problem)
        current = open_write.get(report.job_id)
        # A new attempt, or anything after the attempt ended, starts a write of its own.
        if (current is None or current.attempt != report.attempt
                or current.status in TERMINAL_STATUSES or current.status is JobStatus.RETRYING):
            current = _Write(report.job_id, report.attempt)
            writes.append(current)
            open_write[report.job_id] = current
        current.absorb(report)
    return writes, refused


async def _with_callbacks(writes: list[_Write]) -> list[Job]:
    """The finished jobs with a callback URL among those the batch's final writes were
    about (one query, and only for a batch with a final write of such a job)."""
    ids = list(dict.fromkeys(ObjectId(w.job_id) for w in writes
                             if w.callback and w.status in TERMINAL_STATUSES))
    if not ids:
        return []
    found = collection().find({"_id": {"$in": ids}, "callback_url": {"$ne": None}})
    return [job for job in [to_job(doc) async for doc in found] if job.finished]


async def apply_reports(reports: list[Report]) -> ReportsApplied:
    """Apply ``reports`` in one ordered bulk write; returns how many writes changed a job
    (and the finished jobs whose webhooks are due, see :class:`ReportsApplied`)."""
    writes, refused = plan(reports)
    if not writes:
        return ReportsApplied(applied=0, writes=0, refused=refused)
    now = utcnow()
    result = await collection().bulk_write([write.operation(now) for write in writes], ordered=True)
    return ReportsApplied(applied=result.modified_count, writes=len(writes), refused=refused,
                          finished=await _with_callbacks(writes))
