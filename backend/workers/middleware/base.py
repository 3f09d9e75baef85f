"""Hooks around a task: what every job gets without any task having to ask.

Like Dramatiq's middleware: each concern (timing, reports, retries, timeouts,
cancellation) is a small class in a file of its own, with no-op defaults for three hooks:

* ``before(run)`` in list order (may raise :class:`SkipJob`),
* ``around(run, call)`` wrapping the task call, the first in the list outermost,
* ``after(run, outcome)`` in reverse order, each returning the (maybe changed) outcome.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from backend.errors import JobCancelledError
from backend.jobs import JobStatus, QueueMessage
from backend.settings import WorkerSettings
from backend.tasks import TaskContext

if TYPE_CHECKING:
    import rq.job

    from backend.workers.report_writer import AttemptReports

log = logging.getLogger("backend.workers.jobs")

MAX_ERROR_CHARS = 4000


class SkipJob(Exception):  # a signal to the runner, not an error
    """The job must not run: it was stopped (cancelled, void) or has finished already.

    ``status``/``error``: how a stopped job ends (None for a finished one: nothing to say).
    """

    def __init__(self, why: str, status: JobStatus | None = None,
                 error: str | None = None) -> None:
        super().__init__(why)
        self.status = status
        self.error = error


@dataclass
class JobRun:
    """One attempt at one job, as the hooks see it: what runs, which attempt, where its
    reports go, and (once ``before`` made it) the task's context with its progress and
    cancellation hooks."""

    message: QueueMessage  # what the dispatcher enqueued: task, params, estimate
    attempt: int
    worker_id: str
    reports: AttemptReports
    settings: WorkerSettings
    rq_job: rq.job.Job | None = None
    context: TaskContext | None = None
    started: float = 0.0  # time.monotonic() when the attempt began
    started_at: datetime | None = None  # the same moment, UTC, for the reports

    @property
    def job_id(self) -> str:
        return self.message.job_id


@dataclass
class Outcome:
    """How the attempt ended; hooks may turn a failure into a retry."""

    status: JobStatus
    result: Any = None
    error: str | None = None
    exc: BaseException | None = None
    retry_in: float | None = None


def describe(exc: BaseException) -> str:
    """``Type: message``, short enough for the job's error field."""
    text = str(exc)
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(described) > MAX_ERROR_CHARS:
        described = described[:MAX_ERROR_CHARS] + " [truncated]"
    return described


class Middleware:
    """No-op hooks; subclasses override the ones they need."""

    def before(self, run: JobRun) -> None:
        return None

    def around(self, run: JobRun, call: Callable[[], Any]) -> Any:
        return call()

    def after(self, run: JobRun, outcome: Outcome) -> Outcome:
        return outcome


def execute(run: JobRun, middleware: list[Middleware], task: Callable[[JobRun], Any]) -> Outcome:
    """Run ``task`` once through the hooks and return how it ended."""
    for hook in middleware:
        hook.before(run)
    call: Callable[[], Any] = functools.partial(task, run)
    for hook in reversed(middleware):
        call = functools.partial(hook.around, run, call)
    try:
        outcome = Outcome(JobStatus.SUCCEEDED, result=call())
    except JobCancelledError as exc:
        outcome = Outcome(JobStatus.CANCELLED, error=describe(exc), exc=exc)
    except Exception as exc:  # every task failure becomes an outcome
        log.debug("job %s attempt %d raised %s", run.job_id, run.attempt, describe(exc))
        outcome = Outcome(JobStatus.FAILED, error=describe(exc), exc=exc)
    for hook in reversed(middleware):
        outcome = hook.after(run, outcome)
    return outcome
