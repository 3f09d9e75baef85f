"""The RQ job class of our workers: it performs the job runner and nothing else.

A worker performs only the job runner (:data:`backend.rqjobs.RUN_JOB`), read with RQ's
JSON serializer, from a job hash with nothing else in it
(:mod:`backend.workers.allowlist`). Anyone who can write to Redis could otherwise make a
worker call any importable function (or unpickle anything), import and call the
callbacks a hash names, or send its RQ webhooks.
"""

from __future__ import annotations

import logging
from typing import Any

from rq.job import UNEVALUATED, _job_stack
from rq.job import Job as RQJob

from backend.errors import PermanentError
from backend.rqjobs import RUN_JOB
from backend.workers.allowlist import refusal
from backend.workers.report_writer import AttemptReports

log = logging.getLogger("backend.workers.worker")


class RefusedJobError(PermanentError):
    """An RQ job that names anything but the job runner: it is failed, never performed."""


class RunnerJob(RQJob):
    """An RQ job that performs the job runner and nothing else.

    The worker hands the runner where the attempt's reports go (:attr:`reports`, set
    while it prepares the job): with the job's ``stop`` and ``done`` markers read in the
    same round trip, and taking back the end report to write it in the same transaction
    as RQ's own end of the job.

    Its hash is checked as it is read (:mod:`backend.workers.allowlist`): a refused job
    keeps why in :attr:`refusal` and is never performed. Whatever the hash says, this job
    has no callbacks, webhooks, retries, repeats or dependencies for RQ to act on, on
    every path RQ reads one (the worker's dequeue, its registry cleanup).
    """

    reports: AttemptReports | None = None
    refusal: str | None = None

    def restore(self, raw_data: Any) -> None:
        self.refusal = refusal(raw_data)
        try:
            super().restore(raw_data)
        except Exception as exc:  # unreadable: RQ would stop the worker over it
            self.refusal = self.refusal or f"RQ cannot read it ({type(exc).__name__})"
            if self._data is UNEVALUATED and self._func_name is UNEVALUATED:
                self.data = b""  # so RQ can still save it as failed
        if self.refusal is not None:
            self._success_callback_name = self._failure_callback_name = None
            self._stopped_callback_name = None
            self.webhooks = []
            self._dependency_ids = []
            self.retries_left = self.repeats_left = None

    # Never resolved from a name (an import and a call), whatever the hash says.
    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None

    def send_webhooks(self, status: Any, *, exc_string: str | None = None) -> None:
        """Our jobs have no RQ webhooks (the project's own are sent by the dispatcher)."""

    def _execute(self) -> Any:
        name = self.func_name  # reading it decodes the job's data (JSON, never pickle)
        if name != RUN_JOB:
            log.error("refused RQ job %s: it names %r; workers only perform %s", self.id,
                      name, RUN_JOB)
            raise RefusedJobError(f"refused: RQ job {self.id} names {name!r}; this worker "
                                  f"only performs {RUN_JOB}")
        return super()._execute()

    def perform(self) -> Any:
        # RQ's perform() first PERSISTs the job key (one more round trip); ours never
        # expire (enqueued without a TTL), so only the job stack that
        # get_current_job() reads is kept.
        _job_stack.push(self)
        try:
            self._result = self._execute()
        finally:
            assert self is _job_stack.pop()
        return self._result
