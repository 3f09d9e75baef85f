"""Per-job markers in Redis that every part checks before running a job.

A worker decides whether to run a job without asking the data service: it reads these
two keys in the same round trip that reports the job ``running``.

* ``stop``: the job must not run. Set by the kernel *before* it records a cancel, and
  when a submit's outcome was unknown (the client got a 503 naming the job: the job is
  void). Its value says why (:data:`CANCELLED` or ``void: <reason>``). A worker that
  meets it reports the job's end (``cancelled`` or ``failed``) instead of running it;
  the reconciler does the same for a job it would otherwise send again.
  A scheduled job's marker lives :func:`stop_ttl`: until past its ``run_at``.
* ``done``: the job has finished. Set by the worker with its final report, kept
  DONE_TTL seconds, so a duplicated or redelivered message that arrives after RQ forgot
  the job is not run again.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from backend.jobs import JobStatus

STOP_KEY = "taskbroker:job:{}:stop"
DONE_KEY = "taskbroker:job:{}:done"

CANCELLED = "cancelled"
VOID_PREFIX = "void: "


def stop_key(job_id: str) -> str:
    return STOP_KEY.format(job_id)


def done_key(job_id: str) -> str:
    return DONE_KEY.format(job_id)


def stop_ttl(ttl: int, run_at: datetime | None, now: datetime | None = None) -> int:
    """Seconds a job's ``stop`` marker lives: ``ttl`` (DONE_TTL) past the job's due time,
    so a job cancelled weeks before its ``run_at`` is still refused when it comes due."""
    if run_at is None:
        return ttl
    ahead = (run_at - (now or datetime.now(UTC))).total_seconds()
    return ttl + max(0, math.ceil(ahead))


def void_reason(reason: str) -> str:
    """The stop marker of a job whose submit failed: it never runs, it ends ``failed``."""
    return VOID_PREFIX + reason


def stopped_as(marker: bytes | str) -> tuple[JobStatus, str | None]:
    """How a job stopped by ``marker`` ends: ``cancelled``, or ``failed`` with the reason."""
    text = marker.decode() if isinstance(marker, bytes) else marker
    if text.startswith(VOID_PREFIX):
        return JobStatus.FAILED, text[len(VOID_PREFIX):]
    return JobStatus.CANCELLED, None
