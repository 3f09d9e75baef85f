"""The RQ job function: run one attempt of one job, through the middleware.

The dispatcher enqueues ``run_job(job_id, message)`` (see :mod:`backend.rqjobs`)
with the attempt number in the RQ job's meta. The worker asks the data service nothing:
the message says what to run, Redis says whether the job was stopped or has finished
(:mod:`backend.markers`), and every report goes to the report stream.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime
from typing import Any

import msgspec
from rq import Retry, get_current_job

from backend.errors import PermanentError
from backend.jobs import JobStatus, QueueMessage
from backend.logs import job_context
from backend.reports import Report, about
from backend.rqjobs import next_attempt, scheduler_delay, set_next_attempt
from backend.tasks import get_task
from backend.workers.connections import get_connections
from backend.workers.middleware import JobRun, Middleware, SkipJob, default_middleware, execute
from backend.workers.reaper import recover
from backend.workers.report_writer import AttemptReports
from backend.workers.runner_job import RunnerJob

log = logging.getLogger("backend.workers.jobs")

# The attempt limit (MAX_ATTEMPTS) is enforced on the attempt number by the Retries hook;
# RQ's own retry cap is only a backstop.
RQ_RETRY_CAP = 1000

_decoder = msgspec.json.Decoder(QueueMessage)


def _call_task(run: JobRun) -> Any:
    assert run.context is not None
    return get_task(run.message.name).func(run.context)


def run_job(job_id: str, message: str, middleware: list[Middleware] | None = None) -> Any:
    """Run one attempt of the job ``job_id``.

    Returns RQ's ``Retry`` when it should be tried again, raises when it failed for good
    (after reporting it), else returns the status it ended in. Every line logged meanwhile
    names the job and its trace.
    """
    queued = _decoder.decode(message)
    with job_context(job_id, queued.trace_id):
        return _run(job_id, queued, middleware)


def _run(job_id: str, queued: QueueMessage, middleware: list[Middleware] | None) -> Any:
    connections = get_connections()
    settings = connections.settings.worker
    rq_job = get_current_job()
    worker_id = (rq_job.worker_name if rq_job is not None else None) or \
        f"{socket.gethostname()}.{os.getpid()}"
    # Under a TaskWorker the worker says where the reports go; a bare call writes them.
    reports = rq_job.reports if isinstance(rq_job, RunnerJob) else None
    run = JobRun(message=queued, attempt=next_attempt(rq_job, queued), worker_id=worker_id,
                 reports=reports or AttemptReports(connections.writer), settings=settings,
                 rq_job=rq_job)
    try:
        outcome = execute(run, middleware if middleware is not None else default_middleware(),
                          _call_task)
    except SkipJob as exc:
        if exc.status is not None:  # stopped before it started: say how it ended
            end = Report(job_id=job_id, attempt=run.attempt, at=datetime.now(UTC),
                         status=exc.status, error=exc.error, worker_id=worker_id,
                         **about(queued))
            run.reports.end(end, returns=True)  # this job returns normally
        log.info("job %s not run: %s", job_id, exc)
        return "skipped"
    except (KeyboardInterrupt, SystemExit):
        # A cold shutdown (a second Ctrl-C) mid-task: RQ drops the job from its started
        # registry, so no reaper would find it. Put it back for a later attempt first.
        if rq_job is not None:
            try:
                recover(connections.redis, run.reports.writer, settings, job_id, rq_job.origin,
                        "its worker was shut down mid-job")
            except Exception:  # shutting down regardless; the reconciler will find it
                log.exception("job %s could not be put back", job_id)
        raise
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
