"""RQ's per-job timeout becomes a permanent :class:`JobTimeoutError` (not retried).

The timeout counts the task's own run time only: reports never wait on the data
service (they go to the report stream), so an outage elsewhere cannot use it up.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from rq.timeouts import JobTimeoutException

from backend.errors import JobTimeoutError
from backend.workers.middleware.base import JobRun, Middleware


class Timeouts(Middleware):
    def around(self, run: JobRun, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except JobTimeoutException as exc:
            timeout = run.rq_job.timeout if run.rq_job is not None else None
            raise JobTimeoutError(
                f"job ran past its timeout of {timeout} s (estimated_time x JOB_TIMEOUT_FACTOR, "
                "at least JOB_TIMEOUT_MIN, at most MAX_JOB_TIMEOUT)"
            ) from exc
        finally:
            # The task is over: its timeout must not cut the end report short. (Only
            # under RQ, whose alarm it is; elsewhere SIGALRM may belong to someone else.)
            if run.rq_job is not None and threading.current_thread() is threading.main_thread():
                signal.alarm(0)
