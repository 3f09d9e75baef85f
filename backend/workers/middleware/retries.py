"""A failure that is not permanent is tried again, with exponential backoff, up to a limit."""

from __future__ import annotations

import logging
from dataclasses import replace

from backend.errors import PermanentError
from backend.jobs import JobStatus
from backend.settings import WorkerSettings
from backend.workers.middleware.base import JobRun, Middleware, Outcome

log = logging.getLogger("backend.workers.jobs")


def retry_delay(attempt: int, settings: WorkerSettings) -> float:
    """Backoff before the next attempt: ``RETRY_BACKOFF_BASE * 2**(attempt-1)``, capped."""
    return min(settings.retry_backoff_max, settings.retry_backoff_base * 2 ** max(0, attempt - 1))


class Retries(Middleware):
    """Turns a retryable failure into ``retrying`` while attempts are left."""

    def after(self, run: JobRun, outcome: Outcome) -> Outcome:
        if outcome.status is not JobStatus.FAILED or isinstance(outcome.exc, PermanentError):
            return outcome
        if outcome.exc is None or run.attempt >= run.settings.max_attempts:
            return outcome
        delay = retry_delay(run.attempt, run.settings)
        log.warning("job %s attempt %d of %d failed; retrying in %.1f s", run.job_id,
                    run.attempt, run.settings.max_attempts, delay, exc_info=outcome.exc)
        return replace(outcome, status=JobStatus.RETRYING, retry_in=delay)
