"""The live streams' shared poll and change detection, against a scripted client (fast)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from backend.api.events import JobWatch, job_changes, jobs_changes
from backend.errors import DataServiceError, TooManyStreamsError
from backend.jobs import Job, JobStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ID = "0123456789abcdef01234567"


def job(status: JobStatus, progress: float = 0.0, seconds: int = 0, job_id: str = ID,
        user: str = "u") -> Job:
    return Job(id=job_id, name="simulate", user_id=user, status=status, progress=progress,
               created_at=T0, updated_at=T0 + timedelta(seconds=seconds))


class Script:
    """Answers each get_jobs with the next scripted round (jobs by id, or an error)."""

    def __init__(self, *rounds: dict[str, Job] | Exception) -> None:
        self.rounds = list(rounds)
        self.requests: list[list[str]] = []

    async def get_jobs(self, job_ids: list[str]) -> list[Job]:
        self.requests.append(list(job_ids))
        answer = self.rounds.pop(0) if self.rounds else {}
        if isinstance(answer, Exception):
            raise answer
        return [answer[i] for i in job_ids if i in answer]


def watch(script: Script, **limits: int) -> JobWatch:
    return JobWatch(script, 0.001, max_streams=limits.get("max_streams", 100),  # type: ignore[arg-type]
                    max_per_user=limits.get("max_per_user", 100), give_up_after=0.0)


async def collect(first: Job, *rounds: dict[str, Job] | Exception,
                  keepalive: float = 60.0) -> list:
    return [event async for event in job_changes(watch(Script(*rounds)), first,
                                                 keepalive=keepalive)]


async def test_sends_each_change_once_and_ends_after_a_terminal_status() -> None:
    queued = job(JobStatus.QUEUED)
    running = job(JobStatus.RUNNING, 0, 1)
    rounds = [{ID: j} for j in (queued, running, running, job(JobStatus.RUNNING, 50, 2),
                                job(JobStatus.SUCCEEDED, 100, 3))]
    events = await collect(queued, *rounds)
    assert {event.event for event in events} == {"job"}
    seen = [msgspec.json.decode(event.data, type=Job) for event in events]
    assert [(j.status, j.progress) for j in seen] == [
        ("queued", 0), ("running", 0), ("running", 50), ("succeeded", 100)]


async def test_a_finished_job_gives_one_event() -> None:
    events = await collect(job(JobStatus.FAILED))
    assert len(events) == 1 and events[0].event == "job"


async def test_a_deleted_job_ends_with_an_error_event() -> None:
    events = await collect(job(JobStatus.RUNNING), {})
    assert [e.event for e in events] == ["job", "error"]
    assert "deleted" in msgspec.json.decode(events[-1].data)["detail"]


async def test_a_store_that_stays_down_ends_the_stream_with_an_error_event() -> None:
    events = await collect(job(JobStatus.RUNNING), DataServiceError("down"))
    assert [e.event for e in events] == ["job", "error"]
    assert "unavailable" in msgspec.json.decode(events[-1].data)["detail"]


async def test_many_streams_share_one_request_per_poll() -> None:
    jobs = [job(JobStatus.RUNNING, job_id=f"{n:024x}") for n in range(50)]
    done = {j.id: job(JobStatus.SUCCEEDED, 100, 1, job_id=j.id) for j in jobs}
    script = Script({j.id: j for j in jobs}, done)
    shared = watch(script)

    async def follow(first: Job) -> list:
        return [e async for e in job_changes(shared, first)]

    streams = await asyncio.gather(*(follow(j) for j in jobs))
    assert all(len(events) == 2 for events in streams)
    assert len(script.requests) <= 3  # not one per stream
    assert sorted(script.requests[0]) == sorted(j.id for j in jobs)


async def test_streams_are_capped_per_process_and_per_user() -> None:
    shared = watch(Script(), max_streams=2, max_per_user=1)
    with shared.follow("alice", ["a" * 24]):
        with pytest.raises(TooManyStreamsError, match="SSE_MAX_STREAMS_PER_USER"):
            with shared.follow("alice", ["b" * 24]):
                pass
        with shared.follow("bob", ["c" * 24]):
            with pytest.raises(TooManyStreamsError, match="SSE_MAX_STREAMS"):
                with shared.follow("carol", ["d" * 24]):
                    pass
    assert shared.open_streams == 0
    await shared.close()


async def test_shutdown_ends_an_open_stream_quietly() -> None:
    stopping = threading.Event()
    stopping.set()
    running = job(JobStatus.RUNNING)
    events = [e async for e in job_changes(watch(Script({ID: running})), running,
                                           stopping=stopping)]
    assert [e.event for e in events] == ["job"]


async def test_one_stream_follows_several_jobs_until_each_has_finished_or_gone() -> None:
    a, b, c = (f"{n:024x}" for n in (1, 2, 3))
    rounds = [
        {a: job(JobStatus.RUNNING, 10, 1, job_id=a), b: job(JobStatus.QUEUED, job_id=b)},
        {a: job(JobStatus.SUCCEEDED, 100, 2, job_id=a), b: job(JobStatus.RUNNING, 0, 1,
                                                               job_id=b)},
        {b: job(JobStatus.RUNNING, 0, 1, job_id=b)},  # a is no longer asked for
        {},  # b deleted
    ]
    script = Script(*rounds)
    firsts = [job(JobStatus.QUEUED, job_id=a), job(JobStatus.QUEUED, job_id=b),
              job(JobStatus.FAILED, job_id=c)]
    shared = watch(script)
    events = [e async for e in jobs_changes(shared, firsts, user_id="u")]
    seen = [(e.event, msgspec.json.decode(e.data)["id"]) for e in events]
    # Each at once (c has finished already); then each job's changes in order.
    assert seen[:3] == [("job", a), ("job", b), ("job", c)]
    assert [event for event, job_id in seen[3:] if job_id == a] == ["job", "job"]
    assert [event for event, job_id in seen[3:] if job_id == b] == ["job", "gone"]
    assert seen[-1] == ("gone", b)
    assert [sorted(r) for r in script.requests] == [[a, b], [a, b], [b], [b]]
    assert shared.open_streams == 0
