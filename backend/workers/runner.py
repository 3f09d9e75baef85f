"""The RQ job function: run one job's task once, through the middleware.

The dispatcher enqueues ``run_job(job_id)``, with the attempt number in the RQ job's
meta (see :mod:`backend.workers.enqueue`). The worker asks the data service nothing
before it starts: the PUT that marks the job ``running`` (with that attempt number) is
refused for a job that is cancelled, finished or deleted, and otherwise answers the
job as recorded (name, params, estimate). A retry this worker schedules moves the
number on by one.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from rq import Retry, get_current_job

from backend.errors import DataServiceError, PermanentError
from backend.jobs import JobStatus
from backend.tasks import get_task
from backend.workers.enqueue import next_attempt, scheduler_delay, set_next_attempt
from backend.workers.middleware import JobRun, Middleware, SkipJob, default_middleware, execute
from backend.workers.reaper import recover
from backend.workers.services import get_services

log = logging.getLogger("backend.workers.jobs")

# The attempt limit (MAX_ATTEMPTS) is enforced on the attempt number by the Retries hook;
# RQ's own retry cap only stops a job that keeps finding the data service down.
RQ_RETRY_CAP = 1000


def _call_task(run: JobRun) -> Any:
    assert run.job is not None and run.context is not None
    return get_task(run.job.name).func(run.context)


def run_job(job_id: str, middleware: list[Middleware] | None = None) -> Any:
    """Run the job ``job_id`` once.

    Returns RQ's ``Retry`` when it should be tried again, raises when it failed for good
    (after reporting it), else returns the status it ended in.
    """
    services = get_services()
    rq_job = get_current_job()
    worker_id = (rq_job.worker_name if rq_job is not None else None) or \
        f"{socket.gethostname()}.{os.getpid()}"
    run = JobRun(job_id=job_id, services=services, worker_id=worker_id, rq_job=rq_job,
                 attempt=next_attempt(rq_job))
    try:
        outcome = execute(run, middleware if middleware is not None else default_middleware(),
                          _call_task)
    except SkipJob as exc:
        log.info("job %s not run: %s", job_id, exc)
        return "skipped"
    except (KeyboardInterrupt, SystemExit):
        # A cold shutdown (a second Ctrl-C) mid-task: RQ drops the job from its started
        # registry, so no reaper would find it. Put it back for a later attempt first.
        if rq_job is not None:
            try:
                recover(services, job_id, rq_job.origin, "its worker was shut down mid-job")
            except Exception:  # shutting down regardless; the job is logged for an operator
                log.exception("job %s could not be put back; it may stay running", job_id)
        raise
    except DataServiceError as exc:
        delay = services.settings.worker.retry_backoff_max
        log.warning("job %s not started, the data service is unavailable (%s); "
                    "trying again in %.1f s", job_id, exc, delay)
        return Retry(max=RQ_RETRY_CAP, interval=[scheduler_delay(delay)])  # type: ignore[list-item]
    if outcome.status is JobStatus.RETRYING:
        if rq_job is not None:
            set_next_attempt(rq_job, run.attempt + 1)
        delay = scheduler_delay(outcome.retry_in or 0.0)
        return Retry(max=RQ_RETRY_CAP, interval=[delay])  # type: ignore[list-item]
    if outcome.status is JobStatus.FAILED:
        # Reported already; raising also shows the job failed, with its traceback, in RQ
        # (rq-dashboard's failed registry).
        raise outcome.exc if isinstance(outcome.exc, Exception) else PermanentError(
            outcome.error or "failed")
    return str(outcome.status)
