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

from backend.problems import FieldError

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
USER_ID_PATTERN = r"^[^\s/?#]+$"
UserId = Annotated[
    str,
    Meta(min_length=1, max_length=128, pattern=USER_ID_PATTERN, description="Owner of the job."),
]
Description = Annotated[str, Meta(max_length=2000, description="Free text from the client.")]
EstimatedTime = Annotated[
    float, Meta(ge=0, le=7 * 24 * 3600, description="Expected run time in seconds.")
]
Progress = Annotated[float, Meta(ge=0, le=100, description="Percent done, 0 to 100.")]
ErrorText = Annotated[str, Meta(max_length=20_000, description="Why the job failed.")]
WorkerId = Annotated[str, Meta(max_length=200, description="Worker that runs the job.")]
Attempts = Annotated[int, Meta(ge=0, le=1000, description="Attempts started so far.")]
RunAt = Annotated[datetime, Meta(description="When the job is due: ISO 8601 with a zone "
                                             "(e.g. 2026-05-01T08:00:00Z).")]
Delay = Annotated[float, Meta(ge=0, description="Seconds from now until the job is due.")]
CallbackUrl = Annotated[str, Meta(min_length=1, max_length=2000, description=(
    "URL the finished job is POSTed to (http or https; its host must be in "
    "WEBHOOK_ALLOWED_HOSTS)."))]

DEFAULT_EXECUTOR = "standard"

# What each pattern above means, in words: an error names the rule, never a bare regex.
PATTERN_RULES: dict[str, str] = {
    OBJECT_ID_PATTERN: "must be a job id: 24 lower-case hex digits",
    USER_ID_PATTERN: "must be a user id: 1 to 128 characters, none of them a space, '/', '?' "
                     "or '#'",
    r"^[A-Za-z0-9_.:-]+$": "must be a task name: 1 to 100 letters, digits, '_', '.', ':' or '-'",
    r"^[A-Za-z0-9_-]+$": "must be an executor name: 1 to 64 letters, digits, '_' or '-'",
}


class JobStatus(enum.StrEnum):
    CREATED = "created"
    QUEUED = "queued"
    SCHEDULED = "scheduled"
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
# (progress reports, duplicate deliveries); a terminal status never changes. A job with a
# ``run_at`` is recorded ``scheduled`` and stays so until a worker starts it (or it is
# cancelled); nothing else moves a job into ``scheduled``.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.CREATED: frozenset(
        {JobStatus.CREATED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED,
         JobStatus.CANCELLED}
    ),
    JobStatus.QUEUED: frozenset(
        {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.SCHEDULED: frozenset(
        {JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED,
         JobStatus.CANCELLED}
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


def _aware(moment: datetime) -> datetime:
    """``moment`` with a zone (a time without one is UTC, as everything here stores)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """Now, in UTC, at the millisecond precision MongoDB keeps."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class CreateJob(Struct, forbid_unknown_fields=True, kw_only=True):
    """Body of the data service's ``POST /job/``; the server sets id, status, timestamps.

    ``status`` is the seed's Job body shape: it may be sent, and must then be ``created``
    (a new job is always created; the store refuses any other status with a 400)."""

    name: TaskName
    user_id: UserId
    description: Description | None = None
    estimated_time: EstimatedTime | None = None
    params: dict[str, Any] | None = None
    executor: ExecutorName = DEFAULT_EXECUTOR
    status: str | None = None


# What a new job may be recorded as: ``created`` (the seed's two-step submit),
# ``queued`` (the kernel records it once, then sends its message; the reconciler sends
# it again if the kernel died in between) or ``scheduled`` (the same, due at ``run_at``).
NEW_JOB_STATUSES = frozenset({JobStatus.CREATED, JobStatus.QUEUED, JobStatus.SCHEDULED})


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
    rerun_of: JobId | None = None
    run_at: datetime | None = None
    callback_url: CallbackUrl | None = None


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

    Set by the client: name, description, estimated_time, user_id, params, executor,
    callback_url, and run_at (from the submit's ``run_at`` or ``delay``).
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
    rerun_of: str | None = None
    run_at: datetime | None = None
    callback_url: str | None = None

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


# A list shows the start of an error; the whole of it is on the job itself.
SUMMARY_ERROR_CHARS = 200


class JobSummary(Struct, kw_only=True):
    """A job as a list shows it (``GET /api/v1/jobs``): no params, no result, and the
    error cut to :data:`SUMMARY_ERROR_CHARS` characters. ``GET /api/v1/jobs/{id}`` has
    the whole job."""

    id: JobId
    name: str
    user_id: str
    executor: str = DEFAULT_EXECUTOR
    status: JobStatus = JobStatus.CREATED
    progress: float = 0.0
    attempts: int = 0
    estimated_time: float | None = None
    description: str | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_at: datetime | None = None
    rerun_of: str | None = None


def short_error(error: str | None) -> str | None:
    """An error as a list shows it: at most SUMMARY_ERROR_CHARS characters."""
    if error is None or len(error) <= SUMMARY_ERROR_CHARS:
        return error
    return error[:SUMMARY_ERROR_CHARS - 1] + "\u2026"


class JobSummaryPage(Struct, kw_only=True):
    """One page of jobs as a list shows them, newest first."""

    items: list[JobSummary]
    total: int
    limit: int
    offset: int | None = None
    next_cursor: str | None = None


class Deleted(Struct):
    message: str


class QueueMessage(Struct, kw_only=True, forbid_unknown_fields=False):
    """The STANDARD queue's message: everything the dispatcher needs to route one job."""

    job_id: JobId
    name: str
    executor: str = DEFAULT_EXECUTOR
    params: dict[str, Any] | None = None
    estimated_time: float | None = None
    attempt: int = 1
    submitted_at: datetime = msgspec.field(default_factory=utcnow)
    # The job's trace: with tracing on, trace_id is the W3C trace id and traceparent the
    # submit's span context (W3C Trace Context), which the dispatcher and the worker
    # continue; with tracing off, trace_id is a random id (or the submit's X-Trace-Id).
    trace_id: str = ""
    traceparent: str = ""
    # A scheduled job's due time: the dispatcher keeps it in RQ's scheduled registry until then.
    run_at: datetime | None = None
    # Whether the job has a callback_url: its end report says so, so that the data service
    # looks up (for the webhook) only the finished jobs that have one.
    callback: bool = False

    @property
    def ready_at(self) -> datetime:
        """When the job could first start: its submit, or its ``run_at`` if later (the
        queue wait counts from here, so a scheduled job's wait is not its delay)."""
        submitted, due = _aware(self.submitted_at), self.run_at
        if due is not None and _aware(due) > submitted:
            return _aware(due)
        return submitted


class JobExecutionRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """Body of the kernel's ``POST /api/v1/job_executor/async``. ``user_id`` may be left
    out: the job belongs to the signed-in caller."""

    job_name: TaskName
    estimated_time: EstimatedTime
    user_id: UserId | None = None
    description: Description | None = None
    params: dict[str, Any] | None = None
    # Run later: at ``run_at`` (with a zone; in the past means now) or ``delay`` seconds
    # from now, not both. The job is ``scheduled`` until then.
    run_at: RunAt | None = None
    delay: Delay | None = None
    # POSTed the finished job (see backend/webhook_signing.py).
    callback_url: CallbackUrl | None = None


class BatchJobRequest(JobExecutionRequest, forbid_unknown_fields=True, kw_only=True):
    """One item of ``POST /api/v1/jobs/batch``: a submit's body, and (optionally) the
    executor, which otherwise is the request's ``?executor=`` (default ``standard``)."""

    executor: ExecutorName | None = None


MAX_BATCH_JOBS = 100


class BatchRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """Body of ``POST /api/v1/jobs/batch`` (as the OpenAPI schema shows it; the kernel
    checks every item on its own, so one bad item refuses only that item)."""

    jobs: Annotated[list[BatchJobRequest], Meta(min_length=1, max_length=MAX_BATCH_JOBS)]


class BatchItemResult(Struct, kw_only=True, omit_defaults=True):
    """The outcome of one item of a batch, by its index: the job's id, or why it was
    refused, as a problem (docs/errors.md) without ``type`` and ``instance``: ``status``
    (400, 403, 413 or 422), ``title``, ``detail``, ``errors`` (and ``limit_bytes`` for
    a 413)."""

    index: int
    job_id: str | None = None
    status: int | None = None
    title: str | None = None
    detail: str | None = None
    errors: list[FieldError] | None = None
    limit_bytes: int | None = None


class BatchResponse(Struct, kw_only=True):
    """Answer of ``POST /api/v1/jobs/batch``: one result per item, in order (HTTP 200 when
    every item was accepted, 207 otherwise)."""

    results: list[BatchItemResult]
    accepted: int
    refused: int


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
