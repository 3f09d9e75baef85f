"""The reports an attempt makes: ``running`` before the task (or not running it),
progress while it runs, how it ended after. Each goes where the attempt's
:class:`~backend.workers.report_writer.AttemptReports` sends it (the report stream);
none waits on the data service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import msgspec

from backend import markers
from backend.errors import UnstorableValueError
from backend.jobs import JobStatus, QueueMessage
from backend.reports import Report, about
from backend.storable import check_storable
from backend.tasks import TaskContext
from backend.workers.middleware import cancellation
from backend.workers.middleware.base import JobRun, Middleware, Outcome, SkipJob

log = logging.getLogger("backend.workers.jobs")


def _now() -> datetime:
    return datetime.now(UTC)


class LiveReports:
    """Progress and cancellation of one running attempt, each at most once per ``interval``."""

    def __init__(self, run: JobRun, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._reports = run.reports
        self._run = run
        self._interval = interval
        self._clock = clock
        self._last_progress = float("-inf")
        self._last_check = clock()  # the begin round trip has just read the stop marker
        self._stopped = False

    def progress(self, percent: float) -> None:
        """Report ``percent`` unless the last report is too recent (100 always goes).

        The first report of an attempt whose ``running`` is still to come says
        ``running`` itself.
        """
        now = self._clock()
        if percent < 100 and now - self._last_progress < self._interval:
            return
        self._last_progress = self._last_check = now
        run = self._run
        report = Report(job_id=run.job_id, attempt=run.attempt, at=_now(), progress=percent)
        if self._reports.running_pending():
            self._reports.withdraw_running()
            report = Report(job_id=run.job_id, attempt=run.attempt, at=run.started_at or _now(),
                            status=JobStatus.RUNNING, progress=percent, worker_id=run.worker_id)
        stop = self._reports.progress(report)
        self._stopped = self._stopped or stop is not None

    def is_cancelled(self) -> bool:
        """Whether the job was stopped: RQ's stop-job command, or its ``stop`` marker."""
        if self._stopped or cancellation.requested(self._run.job_id):
            return True
        now = self._clock()
        if now - self._last_check >= self._interval:
            self._last_check = now
            self._stopped = self._reports.stop_marker(self._run.job_id) is not None
        return self._stopped


class Reporting(Middleware):
    """The marker check and ``running`` before the task, the end report after it.

    Under a :class:`~backend.workers.worker.TaskWorker` the markers were read while the
    worker prepared the job, ``running`` is reported only if the task is still running
    REPORT_INTERVAL later (a short job's end carries its start), and a successful end is
    written in one transaction with RQ's own end of the job. Elsewhere (a bare call of
    the runner) each goes to Redis at once. The attempt's ``reports`` knows which.
    """

    def before(self, run: JobRun) -> None:
        running = Report(job_id=run.job_id, attempt=run.attempt, at=run.started_at or _now(),
                         status=JobStatus.RUNNING, worker_id=run.worker_id, progress=0.0)
        begun = run.reports.begin(running)
        if begun.done:
            raise SkipJob("it has finished already")
        if begun.stop is not None:
            status, error = markers.stopped_as(begun.stop)
            raise SkipJob(f"it was stopped ({begun.stop})", status, error)
        live = LiveReports(run, run.settings.report_interval)
        message = run.message
        run.context = TaskContext(
            job_id=run.job_id, params=dict(message.params or {}), attempt=run.attempt,
            estimated_time=message.estimated_time, report_progress=live.progress,
            is_cancelled=live.is_cancelled,
        )

    def after(self, run: JobRun, outcome: Outcome) -> Outcome:
        outcome = self._checked(run, outcome)
        report = self.report(run, outcome)
        run.reports.withdraw_running()
        # A job that returns (succeeded, or cancelled: RQ files it as cancelled) may end in
        # the transaction of RQ's own end of it.
        run.reports.end(report, returns=outcome.status in (JobStatus.SUCCEEDED,
                                                           JobStatus.CANCELLED))
        return outcome

    def _checked(self, run: JobRun, outcome: Outcome) -> Outcome:
        """A successful outcome whose result cannot be stored fails (for good) instead."""
        if outcome.status is not JobStatus.SUCCEEDED:
            return outcome
        try:
            size = len(msgspec.json.encode(outcome.result))
            check_storable("result", outcome.result)
        except (TypeError, msgspec.EncodeError) as exc:
            problem = f"the task's result is not JSON: {exc}"
        except UnstorableValueError as exc:
            problem = f"the task's result cannot be stored: {exc}"
        else:
            if size <= run.settings.max_result_bytes:
                return outcome
            problem = (f"the task's result is {size} bytes of JSON; the limit is "
                       f"MAX_RESULT_BYTES={run.settings.max_result_bytes}")
        log.warning("job %s: %s", run.job_id, problem)
        return replace(outcome, status=JobStatus.FAILED, result=None, error=problem,
                       exc=None, retry_in=None)

    @staticmethod
    def report(run: JobRun, outcome: Outcome) -> Report:
        """The end report of the attempt (a failed one carries its dead letter)."""
        common = dict(job_id=run.job_id, attempt=run.attempt, at=_now(),
                      worker_id=run.worker_id, started_at=run.started_at, **about(run.message))
        settings = run.settings
        if outcome.status is JobStatus.SUCCEEDED:
            return Report(status=JobStatus.SUCCEEDED, result=outcome.result, **common)
        if outcome.status is JobStatus.RETRYING:
            return Report(status=JobStatus.RETRYING, error=(
                f"attempt {run.attempt} of {settings.max_attempts} failed: {outcome.error}; "
                f"retrying in {outcome.retry_in or 0:.1f} s"), **common)
        if outcome.status is JobStatus.FAILED:
            error = (f"{outcome.error or 'failed'} (attempt {run.attempt} of "
                     f"{settings.max_attempts})")
            return Report(status=JobStatus.FAILED, error=error,
                          dead_letter=replace_attempt(run), **common)
        return Report(status=JobStatus.CANCELLED, **common)


def replace_attempt(run: JobRun) -> QueueMessage:
    """The job's message as of this attempt, for the dead-letter queue."""
    return msgspec.structs.replace(run.message, attempt=run.attempt)
