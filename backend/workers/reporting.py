"""Status reports through the data service: running, progress, then how the attempt ended.

The data service applies status moves as conditional updates; a 409 (TransitionError)
means the job moved on without us (cancelled by its owner, or finished by an earlier
delivery) and is expected, never an error. How the attempt ended (and a failed job's
dead-letter message) goes through the outbox (:mod:`backend.workers.outbox`), so a data
service that is down at that moment delays it rather than loses it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

import msgspec

from backend.client import DataServiceRefusedError, SyncDataServiceClient
from backend.errors import DataServiceError, JobNotFoundError, TransitionError
from backend.jobs import JobStatus, UpdateJob
from backend.tasks import TaskContext
from backend.workers import cancel, outbox
from backend.workers.enqueue import message_for
from backend.workers.middleware import JobRun, Middleware, Outcome, SkipJob

log = logging.getLogger("backend.workers.jobs")


class JobReporter:
    """Progress and cancellation of one running job, each at most once per ``interval``."""

    def __init__(self, client: SyncDataServiceClient, job_id: str, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._job_id = job_id
        self._interval = interval
        self._clock = clock
        self._last_progress = float("-inf")
        self._last_check = clock()  # the running PUT has just seen the job's status
        self._stopped = False

    def progress(self, percent: float) -> None:
        """Report ``percent`` unless the last report is too recent (100 always goes)."""
        now = self._clock()
        if percent < 100 and now - self._last_progress < self._interval:
            return
        self._last_progress = now
        try:
            self._client.update_job(self._job_id, UpdateJob(progress=percent))
        except (TransitionError, JobNotFoundError):
            self._stopped = True  # cancelled, finished elsewhere or deleted: stop the task
        except DataServiceError as exc:
            log.warning("job %s: progress report lost: %s", self._job_id, exc)

    def is_cancelled(self) -> bool:
        """Whether the job was cancelled (stop-job command, or its status in the data service)."""
        if self._stopped or cancel.requested(self._job_id):
            return True
        now = self._clock()
        if now - self._last_check < self._interval:
            return False
        self._last_check = now
        try:
            job = self._client.get_job(self._job_id)
        except JobNotFoundError:
            self._stopped = True
        except DataServiceError:
            return False
        else:
            self._stopped = job.finished
        return self._stopped


class Reporting(Middleware):
    """PUT ``running`` before the task (or skip it), then the outcome after it.

    The attempt number comes with the RQ job; only a job enqueued without one makes the
    data service tell it (its recorded count plus one).
    """

    def before(self, run: JobRun) -> None:
        client = run.services.client
        # A report of the previous attempt still pending goes first: sent later, a
        # `retrying` would land on top of this attempt's `running`.
        outbox.flush(run.services, run.job_id)
        try:
            # No need to read the job first: the data service refuses `running` for a job
            # cancelled or finished (409) or deleted (404), and otherwise answers all of it.
            attempt = run.attempt or client.get_job(run.job_id).attempts + 1
            run.job = job = client.update_job(run.job_id, UpdateJob(
                status=JobStatus.RUNNING, attempts=attempt, worker_id=run.worker_id,
                progress=0.0))
        except TransitionError as exc:
            raise SkipJob(f"the job is {exc.current}") from None
        except JobNotFoundError:
            raise SkipJob("the job was deleted") from None
        run.attempt = attempt
        reporter = JobReporter(client, run.job_id, run.settings.report_interval)
        run.context = TaskContext(
            job_id=run.job_id, params=dict(job.params or {}), attempt=attempt,
            estimated_time=job.estimated_time, report_progress=reporter.progress,
            is_cancelled=reporter.is_cancelled,
        )

    def after(self, run: JobRun, outcome: Outcome) -> Outcome:
        update = self._update(run, outcome)
        if update is None:
            return outcome
        dead_letter = None
        if outcome.status is JobStatus.FAILED and run.job is not None:
            dead_letter = message_for(run.job, run.attempt)
        try:
            outbox.report(run.services, run.job_id, run.attempt, update, dead_letter,
                          outcome.error or "failed")
        except TransitionError as exc:
            # Cancelled (or finished) meanwhile: that status stands, nothing else to do.
            log.info("job %s is already %s; %s not recorded", run.job_id, exc.current,
                     outcome.status)
            current = JobStatus(exc.current) if exc.current else JobStatus.CANCELLED
            return replace(outcome, status=current, retry_in=None)
        except JobNotFoundError:
            return replace(outcome, status=JobStatus.CANCELLED, retry_in=None)
        except DataServiceRefusedError as exc:
            # Say a result too large for the data service: the job fails with the reason.
            if outcome.status is JobStatus.FAILED:
                log.error("job %s: could not record its failure: %s", run.job_id, exc)
                return outcome
            failed = replace(outcome, status=JobStatus.FAILED, retry_in=None,
                             error=f"the data service refused the {outcome.status} report: {exc}")
            return self.after(run, failed)
        except DataServiceError as exc:
            log.warning("job %s: %s not recorded yet (%s); it waits in the outbox, and the "
                        "worker executor's sweep sends it again", run.job_id, outcome.status, exc)
        return outcome

    @staticmethod
    def _update(run: JobRun, outcome: Outcome) -> UpdateJob | None:
        if outcome.status is JobStatus.SUCCEEDED:
            try:
                msgspec.json.encode(outcome.result)
            except (TypeError, msgspec.EncodeError) as exc:
                outcome.status = JobStatus.FAILED
                outcome.error = f"the task's result is not JSON: {exc}"
                return UpdateJob(status=JobStatus.FAILED, error=outcome.error)
            return UpdateJob(status=JobStatus.SUCCEEDED, result=outcome.result, progress=100.0,
                             error=None)
        if outcome.status is JobStatus.RETRYING:
            return UpdateJob(status=JobStatus.RETRYING, error=(
                f"attempt {run.attempt} of {run.settings.max_attempts} failed: {outcome.error}; "
                f"retrying in {outcome.retry_in:.1f} s"))
        if outcome.status is JobStatus.FAILED:
            attempts = f" (attempt {run.attempt} of {run.settings.max_attempts})"
            return UpdateJob(status=JobStatus.FAILED, error=(outcome.error or "failed") + attempts)
        if outcome.status is JobStatus.CANCELLED:
            return UpdateJob(status=JobStatus.CANCELLED)
        return None
