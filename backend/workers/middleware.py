"""Hooks around a task: what every job gets without any task having to ask.

Like Dramatiq's middleware: each concern (timing, status reports and dead letters, retries,
timeouts, cancellation) is a small class with no-op defaults for three hooks:

* ``before(run)`` in list order (may raise :class:`SkipJob`),
* ``around(run, call)`` wrapping the task call, the first in the list outermost,
* ``after(run, outcome)`` in reverse order, each returning the (maybe changed) outcome.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rq.timeouts import JobTimeoutException

from backend.errors import JobCancelledError, JobTimeoutError, PermanentError
from backend.jobs import Job, JobStatus
from backend.settings import WorkerSettings
from backend.tasks import TaskContext
from backend.workers import cancel

if TYPE_CHECKING:
    import rq.job

    from backend.workers.services import WorkerServices

log = logging.getLogger("backend.workers.jobs")


class SkipJob(Exception):  # a signal to the runner, not an error
    """The job must not run: it was cancelled, finished or deleted before it started."""


@dataclass
class JobRun:
    """One attempt at one job, as the hooks see it."""

    job_id: str
    services: WorkerServices
    worker_id: str
    rq_job: rq.job.Job | None = None
    job: Job | None = None  # as the data service answered the `running` report
    attempt: int = 0  # carried by the RQ job; 0: not known, the data service is asked
    context: TaskContext | None = None
    started: float = 0.0

    @property
    def settings(self) -> WorkerSettings:
        return self.services.settings.worker


@dataclass
class Outcome:
    """How the attempt ended; hooks may turn a failure into a retry or a skip."""

    status: JobStatus
    result: Any = None
    error: str | None = None
    exc: BaseException | None = None
    retry_in: float | None = None


MAX_ERROR_CHARS = 4000


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
        log.info("job %s attempt %d raised %s", run.job_id, run.attempt, describe(exc))
        outcome = Outcome(JobStatus.FAILED, error=describe(exc), exc=exc)
    for hook in reversed(middleware):
        outcome = hook.after(run, outcome)
    return outcome


def retry_delay(attempt: int, settings: WorkerSettings) -> float:
    """Backoff before the next attempt: ``RETRY_BACKOFF_BASE * 2**(attempt-1)``, capped."""
    return min(settings.retry_backoff_max, settings.retry_backoff_base * 2 ** max(0, attempt - 1))


class Timing(Middleware):
    """Logs how long a job waited in its RQ queue and how long it ran, in ms."""

    def before(self, run: JobRun) -> None:
        run.started = time.monotonic()
        enqueued = run.rq_job.enqueued_at if run.rq_job is not None else None
        if enqueued is not None:
            if enqueued.tzinfo is None:
                enqueued = enqueued.replace(tzinfo=UTC)
            waited = (datetime.now(UTC) - enqueued).total_seconds() * 1000
            log.info("job %s picked up by %s %.1f ms after it was enqueued",
                     run.job_id, run.worker_id, waited)

    def after(self, run: JobRun, outcome: Outcome) -> Outcome:
        name = run.job.name if run.job is not None else "?"
        log.info("job %s (%s) attempt %d %s in %.1f ms", run.job_id, name, run.attempt,
                 outcome.status, (time.monotonic() - run.started) * 1000)
        return outcome


class Cancellation(Middleware):
    """Lets RQ's stop-job command interrupt the task (see :mod:`backend.workers.cancel`)."""

    def around(self, run: JobRun, call: Callable[[], Any]) -> Any:
        with cancel.active(run.job_id):
            return call()


class Timeouts(Middleware):
    """Turns RQ's per-job timeout into a permanent :class:`JobTimeoutError` (not retried)."""

    def around(self, run: JobRun, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except JobTimeoutException as exc:
            timeout = run.rq_job.timeout if run.rq_job is not None else None
            raise JobTimeoutError(
                f"job ran past its timeout of {timeout} s (estimated_time x JOB_TIMEOUT_FACTOR, "
                "at least JOB_TIMEOUT_MIN)"
            ) from exc
        finally:
            # The task is over: its timeout must not cut the status report short. (Only
            # under RQ, whose alarm it is; elsewhere SIGALRM may belong to someone else.)
            if run.rq_job is not None and threading.current_thread() is threading.main_thread():
                signal.alarm(0)


class Retries(Middleware):
    """A failure that is not permanent is tried again with exponential backoff."""

    def after(self, run: JobRun, outcome: Outcome) -> Outcome:
        if outcome.status is not JobStatus.FAILED or isinstance(outcome.exc, PermanentError):
            return outcome
        if outcome.exc is None or run.attempt >= run.settings.max_attempts:
            return outcome
        delay = retry_delay(run.attempt, run.settings)
        log.warning("job %s attempt %d of %d failed; retrying in %.1f s", run.job_id,
                    run.attempt, run.settings.max_attempts, delay, exc_info=outcome.exc)
        return replace(outcome, status=JobStatus.RETRYING, retry_in=delay)


def default_middleware() -> list[Middleware]:
    """The hooks every job runs through, in order."""
    from backend.workers.reporting import Reporting

    return [Timing(), Reporting(), Retries(), Timeouts(), Cancellation()]
