"""The job as MongoDB keeps it: a Beanie document with the fields of :class:`backend.jobs.Job`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pymongo
from beanie import Document
from pymongo import IndexModel

from backend.jobs import DEFAULT_EXECUTOR, Job, JobStatus, utcnow


class JobDocument(Document):
    """One job. The collection name is set from COLLECTION_NAME by :func:`bind_collection`."""

    name: str
    user_id: str
    description: str | None = None
    estimated_time: float | None = None
    params: dict[str, Any] | None = None
    executor: str = DEFAULT_EXECUTOR
    status: JobStatus = JobStatus.CREATED
    progress: float = 0.0
    result: Any = None
    error: str | None = None
    attempts: int = 0
    worker_id: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    rerun_of: str | None = None
    run_at: datetime | None = None
    callback_url: str | None = None

    class Settings:
        name = "jobs"
        # No "_id" in any index: nx-27017 refuses compound indexes naming it, and the
        # (created_at desc, _id desc) sort of a user's list only needs the prefix.
        indexes = [
            IndexModel([("user_id", pymongo.ASCENDING), ("created_at", pymongo.DESCENDING)],
                       name="user_newest_first"),
            IndexModel([("user_id", pymongo.ASCENDING), ("status", pymongo.ASCENDING),
                        ("created_at", pymongo.DESCENDING)], name="user_status_newest_first"),
            # Stale jobs of one status, least recently updated first (GET /job/stale); its
            # status prefix also serves any query by status alone.
            IndexModel([("status", pymongo.ASCENDING), ("updated_at", pymongo.ASCENDING)],
                       name="status_least_recently_updated"),
            # Scheduled jobs, soonest due first (the reconciler's look at them).
            IndexModel([("status", pymongo.ASCENDING), ("run_at", pymongo.ASCENDING)],
                       name="status_soonest_due"),
            # Finished jobs past the retention time (backend/store/retention.py).
            IndexModel([("finished_at", pymongo.ASCENDING)], name="finished_oldest_first"),
        ]


def bind_collection(collection_name: str) -> None:
    """Point :class:`JobDocument` at ``collection_name``; call before ``init_beanie``."""
    JobDocument.Settings.name = collection_name


def new_document(**fields: Any) -> JobDocument:
    """A fresh ``created`` job; the server sets status and both timestamps."""
    now = utcnow()
    return JobDocument(**fields, status=JobStatus.CREATED, created_at=now, updated_at=now)


def _utc(value: datetime | None) -> datetime | None:
    # pymongo's tz_aware datetimes carry bson's own UTC tzinfo; normalise to datetime.UTC
    # so every timestamp is serialised the same way ("Z").
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_job(doc: JobDocument) -> Job:
    """The wire form of a stored job."""
    created_at = _utc(doc.created_at)
    updated_at = _utc(doc.updated_at)
    assert doc.id is not None and created_at is not None and updated_at is not None
    return Job(
        id=str(doc.id),
        name=doc.name,
        user_id=doc.user_id,
        description=doc.description,
        estimated_time=doc.estimated_time,
        params=doc.params,
        executor=doc.executor,
        status=doc.status,
        progress=doc.progress,
        result=doc.result,
        error=doc.error,
        attempts=doc.attempts,
        worker_id=doc.worker_id,
        created_at=created_at,
        updated_at=updated_at,
        started_at=_utc(doc.started_at),
        finished_at=_utc(doc.finished_at),
        rerun_of=doc.rerun_of,
        run_at=_utc(doc.run_at),
        callback_url=doc.callback_url,
    )
