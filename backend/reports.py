"""The report contract: what a worker says about a job, and when the store may apply it.

A worker never waits on the data service. It appends its reports (``running``, progress,
how the attempt ended, a dead letter) to the Redis Stream ``REPORT_STREAM``
(:func:`append_report`, the one way in) and goes on;
the recorder (:mod:`backend.dispatcher.recorder`) reads them in batches and
applies each batch through the data service's ``POST /reports`` in one ``bulk_write``.

Reports may be applied late, twice (a batch redelivered after a crash) or, across
recorder replicas, out of order. Every report therefore carries the attempt it belongs
to, and the store applies it only if the job's status and attempt count allow it
(:func:`report_rule`): a report of an older attempt, a repeated one, or one that would
move a finished job, matches nothing and is dropped. So a replay is harmless, and a
late ``retrying`` of attempt 1 can never land on top of attempt 2's ``running``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from backend.jobs import (
    TERMINAL_STATUSES,
    Attempts,
    ErrorText,
    Job,
    JobId,
    JobStatus,
    Progress,
    QueueMessage,
    WorkerId,
    can_move,
)

# The stream every worker appends to, and the recorders' consumer group on it.
REPORT_STREAM = "taskbroker:reports"
RECORDER_GROUP = "recorders"
REPORT_FIELD = b"r"

# Statuses a worker reports. ``None`` (no status) is a progress report.
REPORTED_STATUSES = frozenset({
    JobStatus.RUNNING, JobStatus.RETRYING, JobStatus.SUCCEEDED, JobStatus.FAILED,
    JobStatus.CANCELLED,
})


class Report(Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """One thing a worker (or the reaper) says about attempt ``attempt`` of a job.

    ``status`` absent: a progress report. ``at`` is when it happened, on the reporter's
    clock: it becomes ``started_at`` of a ``running`` report and ``finished_at`` of a
    final one, however late the report is applied.
    """

    job_id: JobId
    attempt: Attempts
    at: datetime
    status: JobStatus | None = None
    progress: Progress | None = None
    result: Any | UnsetType = UNSET
    error: ErrorText | None = None
    worker_id: WorkerId | None = None
    # When the attempt started: a final report carries it too, so the job shows it even
    # if the attempt's `running` report is applied after the end (and then refused).
    started_at: datetime | None = None
    # A failed-for-good job's message, for the dead-letter queue (with ``error`` as reason).
    dead_letter: QueueMessage | None = None
    # Which job this is, for the statistics and the trail of logs and spans (an end
    # report carries them; the store keeps none of them): the task, when the job was
    # submitted or, if scheduled, due (the queue wait counts from it), its trace id and
    # W3C traceparent.
    task: Annotated[str, Meta(max_length=100)] | None = None
    submitted_at: datetime | None = None
    trace_id: Annotated[str, Meta(max_length=64)] | None = None
    traceparent: Annotated[str, Meta(max_length=128)] | None = None
    # The job has a callback URL: the store answers it among ``finished`` (its webhook).
    callback: bool = False

    @property
    def final(self) -> bool:
        return self.status in TERMINAL_STATUSES


class ReportBatch(Struct, kw_only=True):
    """Body of the data service's ``POST /reports``: reports in the order they were made."""

    reports: list[Report]


class ReportsApplied(Struct, kw_only=True):
    """Answer of ``POST /reports``: how many writes changed a job, of how many made; and
    the jobs with a ``callback_url`` that a final report of the batch was about, as they
    now are (finished), for their webhooks (a replayed batch names them again: the webhook
    schedule keeps one delivery per job)."""

    applied: int
    writes: int
    refused: list[str] = msgspec.field(default_factory=list)  # why a report was not storable
    finished: list[Job] = msgspec.field(default_factory=list)


class AttemptGuard(enum.Enum):
    """How a report's attempt must compare with the attempts the job has recorded."""

    NEWER = "lt"  # recorded < attempt: a new attempt starts
    SAME = "eq"  # recorded == attempt: more about the current attempt
    NOT_OLDER = "lte"  # recorded <= attempt: the end of this attempt (or of a newer one)


@dataclass(frozen=True)
class ReportRule:
    """The condition under which the store applies a report: both must hold."""

    statuses: frozenset[JobStatus]
    attempts: AttemptGuard


def _through_running(current: JobStatus, target: JobStatus) -> bool:
    # A batch may hold a short job's `running` and its end: applied as one write, the
    # job moves from queued to the end through running, each step legal in TRANSITIONS.
    return can_move(current, target) or (
        can_move(current, JobStatus.RUNNING) and can_move(JobStatus.RUNNING, target))


def report_rule(status: JobStatus | None) -> ReportRule:
    """When a report of ``status`` (``None``: progress) may be applied; see the module doc."""
    if status is None:
        return ReportRule(frozenset({JobStatus.RUNNING}), AttemptGuard.SAME)
    if status not in REPORTED_STATUSES:
        raise ValueError(f"a worker does not report {status}")
    if status is JobStatus.RUNNING:
        # A new attempt may start over one whose end was lost (the reaper put it back).
        sources = {s for s in JobStatus if can_move(s, JobStatus.RUNNING) or s is JobStatus.RUNNING}
        return ReportRule(frozenset(sources), AttemptGuard.NEWER)
    sources = {s for s in JobStatus if _through_running(s, status)}
    return ReportRule(frozenset(sources), AttemptGuard.NOT_OLDER)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Report)


def about(message: QueueMessage) -> dict[str, Any]:
    """The fields of an end report that say which job it is (see :class:`Report`)."""
    return {"task": message.name, "submitted_at": message.ready_at,
            "trace_id": message.trace_id or None,
            "traceparent": message.traceparent or None, "callback": message.callback}


def encode_report(report: Report) -> bytes:
    return _encoder.encode(report)


def append_report(pipe: Any, report: Report) -> None:
    """Add the append of ``report`` to the report stream to ``pipe`` (a Redis pipeline,
    sync or asyncio): the only way a report is appended, so every one has the same form."""
    pipe.xadd(REPORT_STREAM, {REPORT_FIELD: encode_report(report)})


def decode_report(raw: bytes) -> Report:
    """Raises :class:`msgspec.DecodeError` (or ValidationError) for a malformed entry."""
    return _decoder.decode(raw)
