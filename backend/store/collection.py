"""The hot paths of the data service, over raw pymongo and msgspec.

The routes every job passes through (recording new jobs in bulk, reading jobs, applying
worker reports) skip Beanie's document building and pydantic validation: msgspec already
validated the body, and a document is read straight into the wire ``Job``. Beanie keeps
the model, the indexes and everything else (:mod:`backend.store.repository`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from backend.jobs import Job, JobSummary, NewJob, short_error, utcnow
from backend.store.documents import JobDocument

DUPLICATE_KEY = 11000


def collection() -> AsyncCollection:
    """The jobs collection Beanie was bound to at start."""
    return JobDocument.get_pymongo_collection()


_TIMESTAMPS = ("created_at", "updated_at", "started_at", "finished_at", "run_at")


def _utc(value: datetime | None) -> datetime | None:
    # pymongo's tz_aware datetimes carry bson's own UTC tzinfo, and a MongoDB-wire server
    # may hand back a datetime it stored by an update as naive: every timestamp leaves as
    # UTC with datetime.UTC, serialised the same everywhere ("Z").
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_job(document: dict[str, Any]) -> Job:
    """The wire form of a raw job document."""
    fields = {key: value for key, value in document.items() if key != "_id"}
    fields["id"] = str(document["_id"])
    job = msgspec.convert(fields, Job)
    return msgspec.structs.replace(job, **{name: _utc(getattr(job, name))
                                           for name in _TIMESTAMPS})


# What a list shows (JobSummary): params and result stay in the database.
SUMMARY_PROJECTION = {"params": 0, "result": 0, "worker_id": 0}


def to_summary(document: dict[str, Any]) -> JobSummary:
    """The list form of a raw job document (read with :data:`SUMMARY_PROJECTION`)."""
    fields = {key: value for key, value in document.items()
              if key not in ("_id", "params", "result")}
    fields["id"] = str(document["_id"])
    fields["error"] = short_error(fields.get("error"))
    summary = msgspec.convert(fields, JobSummary)
    return msgspec.structs.replace(summary, **{
        name: _utc(getattr(summary, name))
        for name in ("created_at", "updated_at", "started_at", "finished_at", "run_at")})


def new_document(job: NewJob, now: datetime) -> dict[str, Any]:
    return {
        "_id": ObjectId(job.id), "name": job.name, "user_id": job.user_id,
        "description": job.description, "estimated_time": job.estimated_time,
        "params": job.params, "executor": job.executor, "status": str(job.status),
        "progress": 0.0, "result": None, "error": None, "attempts": 0, "worker_id": None,
        "created_at": now, "updated_at": now, "started_at": None, "finished_at": None,
        "rerun_of": job.rerun_of, "run_at": job.run_at, "callback_url": job.callback_url,
    }


async def insert_jobs(jobs: Sequence[NewJob]) -> list[str]:
    """Insert the jobs in one write; per job ``created``, or ``exists`` if that id was
    recorded before (the same job sent again)."""
    now = utcnow()
    results = ["created"] * len(jobs)
    try:
        await collection().insert_many([new_document(job, now) for job in jobs], ordered=False)
    except BulkWriteError as exc:
        for error in exc.details.get("writeErrors", []):
            if error.get("code") != DUPLICATE_KEY:
                raise
            results[error["index"]] = "exists"
    return results


async def find_jobs(job_ids: Sequence[str]) -> list[Job]:
    """The jobs of those ids that exist (one query)."""
    ids = [ObjectId(job_id) for job_id in dict.fromkeys(job_ids)]
    return [to_job(doc) async for doc in collection().find({"_id": {"$in": ids}})]


async def find_job(job_id: str) -> Job | None:
    doc = await collection().find_one({"_id": ObjectId(job_id)})
    return to_job(doc) if doc is not None else None
