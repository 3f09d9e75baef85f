"""The worker's span of a job: ``run <task>``, a child of the context its queue message
carries (W3C ``traceparent``), so the job's trace goes from the submit to the run.
Nothing at all when tracing is off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.trace import SpanKind

from backend import tracing
from backend.workers.middleware.base import JobRun, Middleware


class Tracing(Middleware):
    def around(self, run: JobRun, call: Callable[[], Any]) -> Any:
        if not tracing.enabled():
            return call()
        message = run.message
        with tracing.span(f"run {message.name}", traceparent=message.traceparent,
                          kind=SpanKind.CONSUMER,
                          attributes={"taskbroker.job_id": message.job_id,
                                      "taskbroker.task": message.name,
                                      "taskbroker.executor": message.executor,
                                      "taskbroker.attempt": run.attempt,
                                      "taskbroker.worker": run.worker_id}):
            return call()
