"""The event stream's change detection, against a scripted client (fast)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import msgspec

from backend.api.events import job_changes
from backend.errors import DataServiceError, JobNotFoundError
from backend.jobs import Job, JobStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(status: JobStatus, progress: float = 0.0, seconds: int = 0) -> Job:
    return Job(id="0123456789abcdef01234567", name="simulate", user_id="u", status=status,
               progress=progress, created_at=T0, updated_at=T0 + timedelta(seconds=seconds))


class Script:
    """Answers get_job with the next scripted job (or raises it)."""

    def __init__(self, *answers: Job | Exception) -> None:
        self.answers = list(answers)

    async def get_job(self, job_id: str) -> Job:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def collect(first: Job, *answers: Job | Exception, keepalive: float = 60.0) -> list:
    return [event async for event in
            job_changes(Script(*answers), first, 0.001, keepalive)]  # type: ignore[arg-type]


async def test_sends_each_change_once_and_ends_after_a_terminal_status() -> None:
    queued = job(JobStatus.QUEUED)
    running = job(JobStatus.RUNNING, 0, 1)
    events = await collect(queued, queued, running, running, job(JobStatus.RUNNING, 50, 2),
                           job(JobStatus.SUCCEEDED, 100, 3))
    assert {event.event for event in events} == {"job"}
    seen = [msgspec.json.decode(event.data, type=Job) for event in events]
    assert [(j.status, j.progress) for j in seen] == [
        ("queued", 0), ("running", 0), ("running", 50), ("succeeded", 100)]


async def test_a_finished_job_gives_one_event() -> None:
    events = await collect(job(JobStatus.FAILED))
    assert len(events) == 1 and events[0].event == "job"


async def test_quiet_stream_sends_keepalive_comments() -> None:
    queued = job(JobStatus.QUEUED)
    events = await collect(queued, queued, queued, job(JobStatus.CANCELLED, 0, 1), keepalive=0)
    assert [e.comment for e in events if e.event is None] == ["keep-alive", "keep-alive"]
    assert events[-1].event == "job"


async def test_deleted_job_or_store_down_ends_with_an_error_event() -> None:
    for error in (JobNotFoundError("gone"), DataServiceError("down")):
        events = await collect(job(JobStatus.RUNNING), error)
        assert [e.event for e in events] == ["job", "error"]
        assert "detail" in msgspec.json.decode(events[-1].data)


async def test_shutdown_ends_an_open_stream_quietly() -> None:
    stopping = threading.Event()
    stopping.set()
    running = job(JobStatus.RUNNING)
    events = [e async for e in job_changes(Script(running), running, 0.001,  # type: ignore[arg-type]
                                           stopping=stopping)]
    assert [e.event for e in events] == ["job"]
