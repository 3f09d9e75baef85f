"""Reads and writes of job documents; status changes are conditional updates.

A status change is one ``find_one_and_update`` whose filter only matches a job whose
current status may move to the target (``sources_of(target)``), so of two racing
writers at most one can win and a finished job never moves back. When the filter
misses, a re-read tells "no such job" (404) from "illegal move" (409). (A move to
``running`` takes two such writes: one that enters ``running`` and sets started_at, and
one for a repeated ``running`` report, which keeps it.)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, ReturnDocument

from backend.errors import JobNotFoundError, TransitionError
from backend.jobs import (
    TERMINAL_STATUSES,
    CreateJob,
    Job,
    JobPage,
    JobStatus,
    JobSummaryPage,
    UpdateJob,
    can_move,
    sources_of,
    utcnow,
)
from backend.store.collection import SUMMARY_PROJECTION, to_summary
from backend.store.documents import JobDocument, new_document, to_job
from backend.store.pagination import decode_cursor, encode_cursor

_NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]
_LEAST_RECENTLY_UPDATED = [("updated_at", ASCENDING), ("_id", ASCENDING)]
_SOONEST_DUE = [("run_at", ASCENDING), ("_id", ASCENDING)]
_TERMINAL = [str(status) for status in TERMINAL_STATUSES]
_ATTEMPTS = 3


def _not_found(job_id: str) -> JobNotFoundError:
    return JobNotFoundError(f"Job {job_id} not found.")


def _object_id(job_id: str) -> ObjectId:
    # Routes already refuse malformed ids (400); a caller of this module gets a 404.
    try:
        return ObjectId(job_id)
    except (InvalidId, TypeError) as exc:
        raise _not_found(job_id) from exc


async def create_job(data: CreateJob) -> Job:
    """Store a new job in status ``created``."""
    doc = new_document(
        name=data.name,
        user_id=data.user_id,
        description=data.description,
        estimated_time=data.estimated_time,
        params=data.params,
        executor=data.executor,
    )
    await doc.insert()
    return to_job(doc)


async def get_job(job_id: str) -> Job:
    """The job, or :class:`JobNotFoundError`."""
    doc = await JobDocument.get(_object_id(job_id))
    if doc is None:
        raise _not_found(job_id)
    return to_job(doc)


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
    collection = JobDocument.get_pymongo_collection()
    total = await collection.count_documents(scope)
    skip = offset if cursor is None and offset else 0
    # One extra item tells whether a next page exists without a second query.
    if summary:
        raw = collection.find(query, SUMMARY_PROJECTION).sort(_NEWEST_FIRST).skip(skip)
        items: list[Any] = [to_summary(doc) async for doc in raw.limit(limit + 1)]
    else:
        found = JobDocument.find(query).sort(_NEWEST_FIRST).limit(limit + 1)
        if skip:
            found = found.skip(skip)
        items = [to_job(doc) for doc in await found.to_list()]
    more = len(items) > limit
    items = items[:limit]
    next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if more else None
    page = JobSummaryPage if summary else JobPage
    return page(items=items, total=total, limit=limit,
                offset=None if cursor is not None else (offset or 0), next_cursor=next_cursor)


async def count_unfinished(user_id: str) -> int:
    """How many of ``user_id``'s jobs have not finished (finished jobs have finished_at)."""
    return await JobDocument.get_pymongo_collection().count_documents(
        {"user_id": user_id, "finished_at": None})


async def stale_jobs(status: JobStatus, *, older_than: float, limit: int) -> list[Job]:
    """Jobs of every user in ``status`` not updated for ``older_than`` seconds, oldest first
    (``scheduled`` ones: soonest due first, since they wait unchanged by design).

    The age is measured on this service's clock, the one that wrote ``updated_at``, so
    callers on other machines need not agree with it.
    """
    cutoff = utcnow() - timedelta(seconds=older_than)
    found = JobDocument.find({"status": str(status), "updated_at": {"$lt": cutoff}})
    order = _SOONEST_DUE if status is JobStatus.SCHEDULED else _LEAST_RECENTLY_UPDATED
    docs = await found.sort(order).limit(limit).to_list()
    return [to_job(doc) for doc in docs]


async def _find_and_set(oid: ObjectId, status_filter: dict[str, Any],
                        changes: dict[str, Any]) -> JobDocument | None:
    raw = await JobDocument.get_pymongo_collection().find_one_and_update(
        {"_id": oid, "status": status_filter},
        {"$set": changes},
        return_document=ReturnDocument.AFTER,
    )
    return JobDocument.model_validate(raw) if raw is not None else None


async def _apply(oid: ObjectId, target: JobStatus | None,
                 changes: dict[str, Any]) -> JobDocument | None:
    now = utcnow()
    changes = {**changes, "updated_at": now}
    if target is None:
        return await _find_and_set(oid, {"$nin": _TERMINAL}, changes)
    sources = [str(status) for status in sources_of(target)]
    changes["status"] = str(target)
    if target in TERMINAL_STATUSES:
        changes["finished_at"] = now
    if target is not JobStatus.RUNNING:
        return await _find_and_set(oid, {"$in": sources}, changes)
    # started_at marks the start of the current attempt: set it on entering `running`,
    # not on a repeated `running` report (progress, a redelivered message).
    entering = [status for status in sources if status != JobStatus.RUNNING]
    doc = await _find_and_set(oid, {"$in": entering}, {**changes, "started_at": now})
    if doc is None:
        doc = await _find_and_set(oid, {"$eq": str(JobStatus.RUNNING)}, changes)
    return doc


async def update_job(job_id: str, update: UpdateJob) -> Job:
    """Apply ``update`` atomically.

    Raises :class:`JobNotFoundError`, or :class:`TransitionError` (with the current
    status) when the job's status does not allow the move or the job is finished.
    """
    oid = _object_id(job_id)
    changes = update.fields_set()
    target = JobStatus(changes.pop("status")) if "status" in changes else None
    if target is None and not changes:
        return await get_job(job_id)
    for _ in range(_ATTEMPTS):
        doc = await _apply(oid, target, changes)
        if doc is not None:
            return to_job(doc)
        current = await JobDocument.get(oid)
        if current is None:
            raise _not_found(job_id)
        # The filter missed because of the status we just read, unless another writer
        # moved the job in between to a status the move is legal from: then try again.
        allowed = current.status not in TERMINAL_STATUSES if target is None else can_move(
            current.status, target)
        if not allowed:
            wanted = f"to {target}" if target is not None else "once finished"
            raise TransitionError(
                f"Job {job_id} is {current.status}: it cannot change {wanted}.",
                str(current.status),
            )
    raise TransitionError(f"Job {job_id} kept changing; try again.", str(current.status))


async def delete_job(job_id: str) -> None:
    """Remove the job, or raise :class:`JobNotFoundError`."""
    result = await JobDocument.get_pymongo_collection().delete_one({"_id": _object_id(job_id)})
    if result.deleted_count == 0:
        raise _not_found(job_id)
