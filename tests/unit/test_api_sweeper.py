"""The sweep of jobs left created, against in-memory stand-ins (fast).

The same sweep runs against the real data service and a Redis Stream in
tests/integration/api/test_sweeper.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from litestar.datastructures import State

from backend.api.sweeper import MAX_PAGES, message_of, run_sweeper, sweep_once
from backend.errors import (
    DataServiceError,
    JobNotFoundError,
    MessageTooLargeError,
    QueueError,
    TransitionError,
)
from backend.jobs import Job, JobStatus, UpdateJob

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def job(n: int, **fields: Any) -> Job:
    return Job(id=f"{n:024x}", name="echo", user_id="u", params={"n": n}, estimated_time=n,
               created_at=T0 + timedelta(seconds=n), updated_at=T0, **fields)


class FakeClient:
    """Answers stale_jobs from ``pages`` (then nothing); ``fail`` maps job id to an error."""

    def __init__(self, *pages: list[Job] | Exception, **fail: Exception) -> None:
        self.pages = list(pages)
        self.fail = fail
        self.queries: list[dict[str, Any]] = []
        self.updates: list[tuple[str, Any]] = []
        self.asked = asyncio.Event()

    async def stale_jobs(self, status: JobStatus, *, older_than: float,
                         limit: int = 100) -> list[Job]:
        self.queries.append({"status": status, "older_than": older_than, "limit": limit})
        if len(self.queries) > 3:  # the sweep after the third has begun
            self.asked.set()
        page = self.pages.pop(0) if self.pages else []
        if isinstance(page, Exception):
            raise page
        return page

    async def update_job(self, job_id: str, update: UpdateJob) -> Job:
        self.updates.append((job_id, update.status))
        if f"j{int(job_id, 16)}" in self.fail:
            raise self.fail[f"j{int(job_id, 16)}"]
        return job(int(job_id, 16), status=update.status)


class FakeQueue:
    """Takes messages; ``refuse`` maps job id to the error its send raises."""

    def __init__(self, **refuse: Exception) -> None:
        self.refuse = refuse
        self.sent: list[Any] = []

    async def send(self, message: Any) -> str:
        error = self.refuse.get(f"j{int(message.job_id, 16)}")
        if error:
            raise error
        self.sent.append(message)
        return "1"

    async def ensure(self) -> None:
        pass


async def test_each_stale_job_is_sent_then_marked_queued_oldest_first() -> None:
    client, queue = FakeClient([job(1), job(2)]), FakeQueue()
    assert await sweep_once(client, queue, older_than=60) == 2
    assert client.queries == [{"status": JobStatus.CREATED, "older_than": 60, "limit": 100}]
    assert [m.job_id for m in queue.sent] == [job(1).id, job(2).id]
    assert client.updates == [(job(1).id, JobStatus.QUEUED), (job(2).id, JobStatus.QUEUED)]


def test_the_message_is_rebuilt_from_the_job() -> None:
    stored = job(7, executor="priority")
    message = message_of(stored)
    assert (message.job_id, message.name, message.executor, message.params,
            message.estimated_time, message.submitted_at, message.attempt) == (
        stored.id, "echo", "priority", {"n": 7}, 7, stored.created_at, 1)
    assert message.trace_id and message.trace_id != message_of(stored).trace_id


async def test_a_refusal_stops_the_sweep_and_leaves_the_job_created() -> None:
    client = FakeClient([job(1), job(2), job(3)])
    queue = FakeQueue(j2=QueueError("redis is down"))
    assert await sweep_once(client, queue, older_than=60) == 1
    assert [m.job_id for m in queue.sent] == [job(1).id]
    # Job 2 is neither queued nor failed: the next sweep tries it again; 3 waits too.
    assert client.updates == [(job(1).id, JobStatus.QUEUED)]


async def test_a_send_that_hangs_is_a_refusal(monkeypatch: Any) -> None:
    monkeypatch.setattr("backend.api.sweeper.SEND_TIMEOUT", 0.01)

    class HangingQueue(FakeQueue):
        async def send(self, message: Any) -> str:
            await asyncio.Event().wait()
            return "never"

    client = FakeClient([job(1)])
    assert await sweep_once(client, HangingQueue(), older_than=60) == 0
    assert client.updates == []


async def test_a_message_too_large_fails_the_job() -> None:
    client = FakeClient([job(1), job(2)])
    queue = FakeQueue(j1=MessageTooLargeError("300000 bytes"))
    assert await sweep_once(client, queue, older_than=60) == 2
    assert client.updates == [(job(1).id, JobStatus.FAILED), (job(2).id, JobStatus.QUEUED)]


async def test_a_job_moved_or_removed_meanwhile_is_fine() -> None:
    client = FakeClient([job(1), job(2), job(3)], j1=TransitionError("running", "running"),
                        j2=JobNotFoundError("gone"), j3=DataServiceError("down"))
    queue = FakeQueue()
    # Job 3 could not be marked queued: it is on the queue and stays created, so a later
    # sweep sends it again (a duplicate the dispatcher ignores).
    assert await sweep_once(client, queue, older_than=60) == 3
    assert len(queue.sent) == 3


async def test_a_full_page_is_followed_by_the_next_up_to_a_bound() -> None:
    client = FakeClient([job(1), job(2)], [job(3), job(4)], [job(5)])
    assert await sweep_once(client, FakeQueue(), older_than=60, batch=2) == 5
    assert len(client.queries) == 3

    endless = FakeClient(*[[job(2 * n), job(2 * n + 1)] for n in range(MAX_PAGES + 5)])
    assert await sweep_once(endless, FakeQueue(), older_than=60, batch=2) == 2 * MAX_PAGES
    assert len(endless.queries) == MAX_PAGES


async def test_the_sweeper_keeps_sweeping_through_errors_until_cancelled() -> None:
    client = FakeClient(DataServiceError("store down"), RuntimeError("a bug"), [job(1)])
    queue = FakeQueue()
    settings = SimpleNamespace(
        api=SimpleNamespace(stale_sweep_interval=0.001, stale_created_after=5.0),
        queue=SimpleNamespace(queue_create=False))
    state = State({"settings": settings, "client": client, "queue": queue,
                   "queue_ensured": True, "queue_ensure_tried": 0.0})
    task = asyncio.create_task(run_sweeper(state))
    await asyncio.wait_for(client.asked.wait(), timeout=30)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert client.queries[0]["older_than"] == 5.0
    assert [m.job_id for m in queue.sent] == [job(1).id]
