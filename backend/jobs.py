"""The job contract: statuses, legal moves, and every wire body, declared once.

The data service, the kernel API, the dispatcher and the workers all import these;
nothing passes dict-shaped protocols by convention.

Delivery is *at least once*: a queue message may arrive twice and a worker may report
twice. Every effect is keyed on the job id and the store applies status changes as
conditional updates, so a replay can never move a finished job back.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

OBJECT_ID_PATTERN = "^[0-9a-f]{24}$"

JobId = Annotated[
    str, Meta(pattern=OBJECT_ID_PATTERN, description="Job id: a MongoDB ObjectId, 24 hex digits.")
]
TaskName = Annotated[
    str,
    Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$", description="Task name."),
]
ExecutorName = Annotated[
    str,
    Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="Worker pool."),
]
UserId = Annotated[
    str,
    Meta(min_length=1, max_length=128, pattern=r"^[^\s/?#]+$", description="Owner of the job."),
]
Description = Annotated[str, Meta(max_length=2000, description="Free text from the client.")]
EstimatedTime = Annotated[
    float, Meta(ge=0, le=7 * 24 * 3600, description="Expected run time in seconds.")
]
Progress = Annotated[float, Meta(ge=0, le=100, description="Percent done, 0 to 100.")]
ErrorText = Annotated[str, Meta(max_length=20_000, description="Why the job failed.")]
WorkerId = Annotated[str, Meta(max_length=200, description="Worker that runs the job.")]
Attempts = Annotated[int, Meta(ge=0, le=1000, description="Attempts started so far.")]

DEFAULT_EXECUTOR = "standard"


class JobStatus(enum.StrEnum):
    CREATED = "created"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
)

# The one place that knows the legal moves. A job may be reported `running` before the
# kernel has marked it `queued` (the dispatcher can be faster than the kernel's second
# write), hence created -> running. Staying in a non-terminal status is allowed
# (progress reports, duplicate deliveries); a terminal status never changes.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.CREATED: frozenset(
        {JobStatus.CREATED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED,
         JobStatus.CANCELLED}
    ),
    JobStatus.QUEUED: frozenset(
        {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.RUNNING, JobStatus.RETRYING, JobStatus.SUCCEEDED, JobStatus.FAILED,
         JobStatus.CANCELLED}
    ),
    JobStatus.RETRYING: frozenset(
        {JobStatus.RETRYING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED,
         JobStatus.CANCELLED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def can_move(current: JobStatus, target: JobStatus) -> bool:
    """Whether a job in ``current`` may be moved to ``target``."""
    return target in TRANSITIONS[current]


def sources_of(target: JobStatus) -> list[JobStatus]:
    """Every status from which ``target`` may be reached (for conditional updates)."""
    return [status for status, targets in TRANSITIONS.items() if target in targets]


def utcnow() -> datetime:
    """Now, in UTC, at the millisecond precision MongoDB keeps."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class CreateJob(Struct, forbid_unknown_fields=True, kw_only=True):
    """Body of the data service's ``POST /job/``; the server sets id, status, timestamps."""

    name: TaskName
    user_id: UserId
    description: Description | None = None
    estimated_time: EstimatedTime | None = None
    params: dict[str, Any] | None = None
    executor: ExecutorName = DEFAULT_EXECUTOR


# What a new job may be recorded as: ``created`` (the seed's two-step submit) or
# ``queued`` (the kernel records it once, then sends its message; the reconciler sends
# it again if the kernel died in between).
NEW_JOB_STATUSES = frozenset({JobStatus.CREATED, JobStatus.QUEUED})


class NewJob(Struct, forbid_unknown_fields=True, kw_only=True):
    """One job of the data service's ``POST /jobs/bulk``: the caller picks the id, so
    sending the same job again (after a timeout) records it once."""

    id: JobId
    name: TaskName
    user_id: UserId
    status: JobStatus = JobStatus.CREATED
    description: Description | None = None
    estimated_time: EstimatedTime | None = None
    params: dict[str, Any] | None = None
    executor: ExecutorName = DEFAULT_EXECUTOR


class NewJobs(Struct, forbid_unknown_fields=True, kw_only=True):
    """Body of ``POST /jobs/bulk``."""

    jobs: Annotated[list[NewJob], Meta(min_length=1, max_length=1000)]


class NewJobsAnswer(Struct, kw_only=True):
    """Per job of ``POST /jobs/bulk``, in order: ``created``, or ``exists`` (recorded before)."""

    results: list[str]


class UpdateJob(Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Body of ``PUT /job/{id}``: every field optional; absent fields stay as they are."""

    status: JobStatus | UnsetType = UNSET
    progress: Progress | UnsetType = UNSET
    result: Any | UnsetType = UNSET
    error: ErrorText | None | UnsetType = UNSET
    attempts: Attempts | UnsetType = UNSET
    worker_id: WorkerId | None | UnsetType = UNSET
    description: Description | None | UnsetType = UNSET
    estimated_time: EstimatedTime | None | UnsetType = UNSET

    def fields_set(self) -> dict[str, Any]:
        """The fields the client sent, by name."""
        return {
            name: getattr(self, name)
            for name in self.__struct_fields__
            if getattr(self, name) is not UNSET
        }


class Job(Struct, kw_only=True):
    """A job as every service sees it on the wire.

    Set by the client: name, description, estimated_time, user_id, params, executor.
    Set by the system: id, status, progress (percent, 0 to 100), result, error,
    attempts, worker_id and the UTC timestamps.
    """

    id: JobId
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

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class JobCreated(Struct):
    """Answer of ``POST /job/``."""

    id: JobId


class JobPage(Struct, kw_only=True):
    """One page of a user's jobs, newest first."""

    items: list[Job]
    total: int
    limit: int
    offset: int | None = None
    next_cursor: str | None = None


class Deleted(Struct):
    message: str


class Conflict(Struct, kw_only=True):
    """Body of a 409: the move was illegal given the job's current status."""

    status_code: int = 409
    detail: str
    current_status: JobStatus


class QueueMessage(Struct, kw_only=True, forbid_unknown_fields=False):
    """The STANDARD queue's message: everything the dispatcher needs to route one job."""

    job_id: JobId
    name: str
    executor: str = DEFAULT_EXECUTOR
    params: dict[str, Any] | None = None
    estimated_time: float | None = None
    attempt: int = 1
    submitted_at: datetime = msgspec.field(default_factory=utcnow)
    trace_id: str = ""


class JobExecutionRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """Body of the kernel's ``POST /api/v1/job_executor/async``. ``user_id`` may be left
    out: the job belongs to the signed-in caller."""

    job_name: TaskName
    estimated_time: EstimatedTime
    user_id: UserId | None = None
    description: Description | None = None
    params: dict[str, Any] | None = None


class SubmitResponse(Struct, kw_only=True):
    """Answer of a submit: the job is recorded and on the queue."""

    status: int = 200
    job_id: JobId


class TaskInfo(Struct, kw_only=True):
    name: str
    description: str


class ExecutorInfo(Struct, kw_only=True):
    name: str
    default: bool = False


def encode(value: Any) -> bytes:
    return msgspec.json.encode(value)
