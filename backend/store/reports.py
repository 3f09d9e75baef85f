"""Applying a batch of worker reports: one ``bulk_write``, every write conditional.

Reports of one job that follow each other within a batch and belong to the same
attempt are folded into one write (a short job's ``running``, progress and end become
a single update), which is what makes a batch cheap. Each write's filter is the
report's rule (:func:`backend.reports.report_rule`) on the job's status and attempt
count, so a late, repeated or out-of-order report matches nothing. The writes of one
job keep their order; the bulk write is ordered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from msgspec import UNSET
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from backend.errors import UnstorableValueError
from backend.jobs import TERMINAL_STATUSES, Job, JobStatus, utcnow
from backend.reports import AttemptGuard, Report, ReportsApplied, report_rule
from backend.storable import check_storable
from backend.store.collection import to_job

_GUARD = {AttemptGuard.NEWER: "$lt", AttemptGuard.SAME: "$eq", AttemptGuard.NOT_OLDER: "$lte"}
_UNFINISHED = frozenset(s for s in JobStatus if s not in TERMINAL_STATUSES)


def status_condition(statuses: frozenset[JobStatus]) -> tuple[str, Any]:
    """The filter of a rule's statuses. Every finished job has ``finished_at`` and no
    unfinished one has (the store sets it with the terminal status), so "any unfinished
    status" is ``finished_at: null``: the same set, and far cheaper for a MongoDB-wire
    server to test than a list of statuses."""
    if statuses == _UNFINISHED:
        return "finished_at", None
    if len(statuses) == 1:
        return "status", str(next(iter(statuses)))
    return "status", {"$in": sorted(str(status) for status in statuses)}


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
        field_name, wanted = status_condition(rule.statuses)
        condition = {
            "_id": ObjectId(self.job_id),
            field_name: wanted,
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


async def _with_callbacks(collection: AsyncCollection, writes: list[_Write]) -> list[Job]:
    """The finished jobs with a callback URL among those the batch's final writes were
    about (one query, and only for a batch with a final write of such a job)."""
    ids = list(dict.fromkeys(ObjectId(w.job_id) for w in writes
                             if w.callback and w.status in TERMINAL_STATUSES))
    if not ids:
        return []
    found = collection.find({"_id": {"$in": ids}, "callback_url": {"$ne": None}})
    return [job for job in [to_job(doc) async for doc in found] if job.finished]


async def apply_reports(collection: AsyncCollection, reports: list[Report]) -> ReportsApplied:
    """Apply ``reports`` in one ordered bulk write; returns how many writes changed a job
    (and the finished jobs whose webhooks are due, see :class:`ReportsApplied`)."""
    writes, refused = plan(reports)
    if not writes:
        return ReportsApplied(applied=0, writes=0, refused=refused)
    now = utcnow()
    result = await collection.bulk_write([write.operation(now) for write in writes], ordered=True)
    return ReportsApplied(applied=result.modified_count, writes=len(writes), refused=refused,
                          finished=await _with_callbacks(collection, writes))
