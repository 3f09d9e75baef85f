"""The job as MongoDB keeps it, and the one way in and out of that form.

:class:`JobDocument`'s fields are not declared here: they are the fields of the wire
type :class:`backend.jobs.Job` (names, types, defaults), so a field added to the job is
stored, read and answered without a second declaration. Beanie keeps the model for its
collection name and indexes; the reads and writes go through pymongo and convert a raw
document to the wire ``Job`` with :func:`to_job` (msgspec already validated what comes in).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import pydantic
import pymongo
from beanie import Document
from bson import ObjectId
from msgspec import NODEFAULT
from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from backend.jobs import TERMINAL_STATUSES, Job, JobStatus, JobSummary, short_error


class _JobCollection(Document):
    """The collection, its indexes; the fields come from :class:`backend.jobs.Job`."""

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


def _stored_fields() -> dict[str, Any]:
    """Every field of the wire ``Job`` but its id (MongoDB's ``_id``), as pydantic fields."""
    fields: dict[str, Any] = {}
    for field in msgspec.structs.fields(Job):
        if field.name == "id":
            continue
        if field.default_factory is not NODEFAULT:
            fields[field.name] = (field.type, pydantic.Field(default_factory=field.default_factory))
        else:
            fields[field.name] = (field.type, ... if field.default is NODEFAULT else field.default)
    return fields


JobDocument: type[Document] = pydantic.create_model(
    "JobDocument", __base__=_JobCollection, __module__=__name__,
    __doc__="One job. The collection name is set from COLLECTION_NAME by "
            ":func:`bind_collection`.",
    **_stored_fields())


def bind_collection(collection_name: str) -> None:
    """Point :class:`JobDocument` at ``collection_name``; call before ``init_beanie``."""
    JobDocument.Settings.name = collection_name


def collection() -> AsyncCollection:
    """The jobs collection Beanie was bound to at start."""
    return JobDocument.get_pymongo_collection()


def new_document(*, now: datetime, job_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A new job's document: ``fields`` as the client set them, every other field at the
    wire ``Job``'s default, both timestamps ``now`` (and a fresh id unless ``job_id``)."""
    job = Job(id=job_id or str(ObjectId()), created_at=now, updated_at=now, **fields)
    stored = msgspec.structs.asdict(job)
    return {"_id": ObjectId(stored.pop("id")), **stored, "status": str(job.status)}


_Wire = TypeVar("_Wire", Job, JobSummary)
_TIMESTAMPS = ("created_at", "updated_at", "started_at", "finished_at", "run_at")


def _utc(value: datetime | None) -> datetime | None:
    # pymongo's tz_aware datetimes carry bson's own UTC tzinfo, and a MongoDB-wire server
    # may hand back a datetime it stored by an update as naive: every timestamp leaves as
    # UTC with datetime.UTC, serialised the same everywhere ("Z").
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _convert(document: dict[str, Any], kind: type[_Wire]) -> _Wire:
    fields = {key: value for key, value in document.items() if key != "_id"}
    fields["id"] = str(document["_id"])
    converted = msgspec.convert(fields, kind)
    return msgspec.structs.replace(converted, **{name: _utc(getattr(converted, name))
                                                 for name in _TIMESTAMPS})


def to_job(document: dict[str, Any]) -> Job:
    """The wire form of a raw job document."""
    return _convert(document, Job)


# What a list shows (JobSummary): params and result stay in the database.
SUMMARY_PROJECTION = {"params": 0, "result": 0, "worker_id": 0}


def to_summary(document: dict[str, Any]) -> JobSummary:
    """The list form of a raw job document (read with :data:`SUMMARY_PROJECTION`)."""
    fields = {key: value for key, value in document.items() if key not in ("params", "result")}
    fields["error"] = short_error(fields.get("error"))
    return _convert(fields, JobSummary)


UNFINISHED = frozenset(s for s in JobStatus if s not in TERMINAL_STATUSES)


def status_filter(statuses: frozenset[JobStatus] | set[JobStatus]) -> dict[str, Any]:
    """The filter that matches a job in one of ``statuses``.

    Every finished job has ``finished_at`` and no unfinished one has (the store sets it
    with the terminal status), so "any unfinished status" is ``finished_at: null``: the
    same set, and far cheaper for a MongoDB-wire server to test than a list of statuses.
    """
    statuses = frozenset(statuses)
    if statuses == UNFINISHED:
        return {"finished_at": None}
    if len(statuses) == 1:
        return {"status": str(next(iter(statuses)))}
    return {"status": {"$in": sorted(str(status) for status in statuses)}}
