"""Prometheus counters and histograms of each attempt, by task and executor.

Counted here: attempts started, and how each ended (succeeded, failed for good, to be
retried); the task's run time and, for a first attempt, how long the job waited from its
submit to its start. A cancel is counted by the kernel that recorded it. Under the
worker executor, the values go to its multiprocess directory
(:mod:`backend.workers.worker_metrics`), which its ``/metrics`` sums over every worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from backend import metrics
from backend.jobs import JobStatus
from backend.workers.middleware.base import JobRun, Middleware, Outcome

_ENDS = {JobStatus.SUCCEEDED: metrics.JOBS_SUCCEEDED, JobStatus.FAILED: metrics.JOBS_FAILED,
         JobStatus.RETRYING: metrics.JOBS_RETRIED}


class Metrics(Middleware):
    """One instance per attempt (see :func:`default_middleware`)."""

    def __init__(self) -> None:
        self.ran_for: float | None = None

    def around(self, run: JobRun, call: Callable[[], Any]) -> Any:
        message = run.message
        metrics.JOBS_STARTED.labels(message.name, message.executor).inc()
        if run.attempt == 1 and run.started_at is not None:
            waited = (run.started_at - message.ready_at).total_seconds()
            if waited >= 0:
                metrics.JOB_QUEUE_WAIT_SECONDS.labels(message.name).observe(waited)
        began = time.perf_counter()
        try:
            return call()
        finally:
            self.ran_for = time.perf_counter() - began

    def after(self, run: JobRun, outcome: Outcome) -> Outcome:
        counter = _ENDS.get(outcome.status)
        if counter is not None:
            counter.labels(run.message.name, run.message.executor).inc()
        if self.ran_for is not None:
            metrics.JOB_RUN_SECONDS.labels(run.message.name).observe(self.ran_for)
        return outcome
