"""Pickup latency and run time of each attempt, in ms: one log line per attempt."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from backend.workers.middleware.base import JobRun, Middleware, Outcome

log = logging.getLogger("backend.workers.jobs")


class Timing(Middleware):
    """Logs how long a job waited in its RQ queue and how long it ran."""

    def before(self, run: JobRun) -> None:
        run.started = time.monotonic()
        run.started_at = datetime.now(UTC)

    def after(self, run: JobRun, outcome: Outcome) -> Outcome:
        if log.isEnabledFor(logging.INFO):
            enqueued = run.rq_job.enqueued_at if run.rq_job is not None else None
            waited = ""
            if enqueued is not None and run.started_at is not None:
                if enqueued.tzinfo is None:
                    enqueued = enqueued.replace(tzinfo=UTC)
                wait_ms = (run.started_at - enqueued).total_seconds() * 1000
                waited = f" after waiting {wait_ms:.1f} ms"
            log.info("job %s (%s) attempt %d %s in %.1f ms%s", run.job_id, run.message.name,
                     run.attempt, outcome.status, (time.monotonic() - run.started) * 1000, waited)
        return outcome
