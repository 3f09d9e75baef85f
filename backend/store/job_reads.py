"""Every read of the job collection: one job, jobs by id, a user's pages, stale jobs.

Raw pymongo reads, each document converted to the wire form by
:func:`backend.store.documents.to_job` (or :func:`~backend.store.documents.to_summary`
for a list that shows no params and no result: they are not even read).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING

from backend.errors import JobNotFoundError
from backend.jobs import Job, JobPage, JobStatus, JobSummaryPage, utcnow
from backend.store.documents import SUMMARY_PROJECTION, collection, to_job, to_summary
from backend.store.pagination import decode_cursor, encode_cursor

_NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]
_LEAST_RECENTLY_UPDATED = [("updated_at", ASCENDING), ("_id", ASCENDING)]
_SOONEST_DUE = [("run_at", ASCENDING), ("_id", ASCENDING)]


def not_found(job_id: str) -> JobNotFoundError:
    return JobNotFoundError(f"Job {job_id} not found.")


def object_id(job_id: str) -> ObjectId:
    """The ObjectId of ``job_id``; routes already refuse malformed ids (400), a caller of
    this module gets a 404."""
    try:
        return ObjectId(job_id)
    except (InvalidId, TypeError) as exc:
        raise not_found(job_id) from exc


async def find_job(job_id: str) -> Job | None:
    """The job, or None."""
    doc = await collection().find_one({"_id": object_id(job_id)})
    return to_job(doc) if doc is not None else None


async def get_job(job_id: str) -> Job:
    """The job, or :class:`JobNotFoundError`."""
    job = await find_job(job_id)
    if job is None:
        raise not_found(job_id)
    return job


async def find_jobs(job_ids: Sequence[str]) -> list[Job]:
    """The jobs of those ids that exist (one query)."""
    ids = [ObjectId(job_id) for job_id in dict.fromkeys(job_ids)]
    return [to_job(doc) async for doc in collection().find({"_id": {"$in": ids}})]


async def list_jobs(user_id: str | None, *, status: JobStatus | None = None, limit: int = 20,
                    cursor: str | None = None, offset: int | None = None,
                    summary: bool = False) -> JobPage | JobSummaryPage:
    """One page of ``user_id``'s jobs (every user's when None), newest first, after
    ``cursor`` or from ``offset``; with ``summary``, as a list shows them (no params, no
    result: they are not even read).

    Raises :class:`~backend.store.pagination.InvalidCursorError` for a bad cursor.
    """
    scope: dict[str, Any] = {"user_id": user_id} if user_id is not None else {}
    if status is not None:
        scope["status"] = str(status)
    query = dict(scope)
    if cursor is not None:
        after = decode_cursor(cursor)
        query["$or"] = [
            {"created_at": {"$lt": after.created_at}},
            {"created_at": after.created_at, "_id": {"$lt": after.job_id}},
        ]
    jobs = collection()
    total = await jobs.count_documents(scope)
    skip = offset if cursor is None and offset else 0
    # One extra item tells whether a next page exists without a second query.
    found = jobs.find(query, SUMMARY_PROJECTION if summary else None).sort(_NEWEST_FIRST)
    if skip:
        found = found.skip(skip)
    convert = to_summary if summary else to_job
    items: list[Any] = [convert(doc) async for doc in found.limit(limit + 1)]
    more = len(items) > limit
    items = items[:limit]
    next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if more else None
    page = JobSummaryPage if summary else JobPage
    return page(items=items, total=total, limit=limit,
                offset=None if cursor is not None else (offset or 0), next_cursor=next_cursor)


async def count_unfinished(user_id: str) -> int:
    """How many of ``user_id``'s jobs have not finished (finished jobs have finished_at)."""
    return await collection().count_documents({"user_id": user_id, "finished_at": None})


async def stale_jobs(status: JobStatus, *, older_than: float, limit: int) -> list[Job]:
    """Jobs of every user in ``status`` not updated for ``older_than`` seconds, oldest first
    (``scheduled`` ones: soonest due first, since they wait unchanged by design).

    The age is measured on this service's clock, the one that wrote ``updated_at``, so
    callers on other machines need not agree with it.
    """
    cutoff = utcnow() - timedelta(seconds=older_than)
    found = collection().find({"status": str(status), "updated_at": {"$lt": cutoff}})
    order = _SOONEST_DUE if status is JobStatus.SCHEDULED else _LEAST_RECENTLY_UPDATED
    return [to_job(doc) async for doc in found.sort(order).limit(limit)]
