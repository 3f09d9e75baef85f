"""What a submit's ``run_at``, ``delay`` and ``callback_url`` make of the job.

A job given a due time in the future is recorded ``scheduled`` with its ``run_at`` and
sent to the STANDARD queue at once, like any other; the dispatcher keeps it in RQ's
scheduled registry until then (:mod:`backend.rqjobs`). A due time that is not in
the future (a ``run_at`` in the past, a ``delay`` of 0) is an ordinary ``queued`` job.

``run_at`` is rounded up to the whole second: RQ's scheduled registry keeps whole
seconds, so the time the job shows is the time it becomes due, never later than a
worker may start it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from backend.errors import CallbackRefusedError
from backend.jobs import JobExecutionRequest, JobStatus
from backend.settings import Settings
from backend.web import invalid, unprocessable
from backend.webhook_signing import check_callback_url


@dataclass(frozen=True)
class SubmitOptions:
    """The fields a submit's options give the new job (and its queue message)."""

    status: JobStatus = JobStatus.QUEUED
    run_at: datetime | None = None
    callback_url: str | None = None


def _whole_second(moment: datetime) -> datetime:
    return datetime.fromtimestamp(math.ceil(moment.timestamp()), UTC)


def _ahead(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:g} days"
    return f"{seconds:g} s"


def due_time(request: JobExecutionRequest, limit: float,
             now: datetime | None = None) -> datetime | None:
    """When the job is due (UTC; ``now`` if that is not in the future, else rounded up to
    the whole second), or None if the request names no time. Raises a 400 for both
    fields, a ``run_at`` without a zone, or a time more than ``limit`` seconds
    (MAX_SCHEDULE_AHEAD) ahead."""
    if request.run_at is None and request.delay is None:
        return None
    now = now or datetime.now(UTC)
    if request.run_at is not None and request.delay is not None:
        raise invalid("run_at", "give run_at or delay, not both")
    if request.delay is not None:
        key, ahead = "delay", request.delay
    else:
        assert request.run_at is not None
        if request.run_at.tzinfo is None:
            raise invalid("run_at", "needs a time zone, e.g. 2026-05-01T08:00:00Z or "
                                     "2026-05-01T10:00:00+02:00")
        key, ahead = "run_at", (request.run_at - now).total_seconds()
    if ahead > limit:
        raise invalid(key, f"{_ahead(ahead)} ahead is further than a job may be scheduled: "
                            f"at most {_ahead(limit)} (MAX_SCHEDULE_AHEAD)")
    if ahead <= 0:
        return now.replace(microsecond=now.microsecond // 1000 * 1000)
    return _whole_second(now + timedelta(seconds=ahead))


def submit_options(request: JobExecutionRequest, settings: Settings,
                   now: datetime | None = None) -> SubmitOptions:
    """Check a submit's ``run_at``/``delay`` and ``callback_url`` (a 400 or 422 naming the
    field) and say what they make of the job."""
    now = now or datetime.now(UTC)
    run_at = due_time(request, settings.api.max_schedule_ahead, now)
    callback_url = None
    if request.callback_url is not None:
        try:
            callback_url = check_callback_url(request.callback_url,
                                              settings.webhooks.allowed_hosts)
        except CallbackRefusedError as exc:
            raise unprocessable("callback_url", exc.reason, str(exc)) from exc
    scheduled = run_at is not None and run_at > now
    return SubmitOptions(status=JobStatus.SCHEDULED if scheduled else JobStatus.QUEUED,
                         run_at=run_at, callback_url=callback_url)
