"""The kernel's submit, cancel and delete, against in-memory stand-ins (fast).

Redis is fakeredis here; the same paths run against a real Redis, data service and
queues in tests/integration/api and tests/e2e.
"""

from __future__ import annotations

import asyncio
import functools
import operator
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from backend import markers
from backend.api.services import cancel_job, delete_job
from backend.api.submit import Submitter, new_job_id
from backend.errors import DataServiceError, QueueError, SubmitError, TransitionError
from backend.jobs import TERMINAL_STATUSES, Job, JobStatus, NewJob, QueueMessage, UpdateJob
from backend.reports import REPORT_FIELD, REPORT_STREAM, decode_report
from backend.settings import Settings

JOB_ID = "0123456789abcdef01234567"


def make_job(status: JobStatus) -> Job:
    now = datetime.now(UTC)
    return Job(id=JOB_ID, name="echo", user_id="u", status=status, created_at=now,
               updated_at=now)


class FakeClient:
    """Records calls in order; ``fail`` maps a method name to the error it raises."""

    def __init__(self, status: JobStatus = JobStatus.QUEUED, **fail: Exception) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.status = status
        self.fail = fail
        self.seen_stop_marker: bool | None = None
        self.redis: Any = None

    async def _call(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        await asyncio.sleep(0)  # let concurrent submits gather, as a real request would
        if name in self.fail:
            raise self.fail[name]

    async def create_jobs(self, jobs: list[NewJob]) -> list[str]:
        await self._call("create", [job.id for job in jobs])
        return ["created"] * len(jobs)

    async def apply_reports(self, reports: list) -> None:
        await self._call("reports", reports)

    async def update_job(self, job_id: str, update: UpdateJob) -> Job:
        if self.redis is not None:
            self.seen_stop_marker = bool(await self.redis.exists(markers.stop_key(job_id)))
        await self._call("update", update.fields_set())
        self.status = update.status  # type: ignore[assignment]
        return make_job(self.status)

    async def get_job(self, job_id: str) -> Job:
        await self._call("get", job_id)
        return make_job(self.status)

    async def delete_job(self, job_id: str) -> None:
        await self._call("delete", job_id)


class FakeQueue:
    def __init__(self, client: FakeClient, error: Exception | None = None) -> None:
        self.client = client
        self.error = error
        self.sent: list[QueueMessage] = []

    async def send_many(self, messages: list[QueueMessage]) -> list[str]:
        self.client.calls.append(("send", [m.job_id for m in messages]))
        if self.error:
            raise self.error
        self.sent += messages
        return ["1"] * len(messages)


def new_job() -> tuple[NewJob, QueueMessage]:
    job_id = new_job_id()
    return (NewJob(id=job_id, name="echo", user_id="u", status=JobStatus.QUEUED),
            QueueMessage(job_id=job_id, name="echo"))


@pytest.fixture
def redis() -> fakeredis.FakeAsyncRedis:
    return fakeredis.FakeAsyncRedis()


def submitter(client: FakeClient, queue: FakeQueue, redis: Any) -> Submitter:
    return Submitter(client, queue, redis, Settings())  # type: ignore[arg-type]


async def voids(redis: Any) -> dict[str, str]:
    """Job id -> error of every void (failed) report the kernel appended."""
    found = {}
    for _, fields in await redis.xrange(REPORT_STREAM, "-", "+"):
        report = decode_report(fields[REPORT_FIELD])
        found[report.job_id] = report.error
        assert report.status is JobStatus.FAILED and report.attempt == 0
    return found


async def test_submit_records_the_job_queued_then_sends_it(redis) -> None:
    client = FakeClient()
    queue = FakeQueue(client)
    job, message = new_job()
    await submitter(client, queue, redis).submit(job, message)
    assert client.calls == [("create", [job.id]), ("send", [job.id])]
    assert queue.sent == [message]


async def test_concurrent_submits_share_one_record_and_one_send(redis) -> None:
    client = FakeClient()
    queue = FakeQueue(client)
    batcher = submitter(client, queue, redis)
    jobs = [new_job() for _ in range(40)]
    await asyncio.gather(*(batcher.submit(job, message) for job, message in jobs))
    creates = [ids for name, ids in client.calls if name == "create"]
    assert 1 <= len(creates) <= 2  # the first goes alone, the rest gathered meanwhile
    assert sorted(functools.reduce(operator.iadd, creates, [])) == sorted(job.id for job, _ in jobs)
    assert len(queue.sent) == 40


async def test_a_store_failure_makes_the_job_void_and_sends_nothing(redis) -> None:
    client = FakeClient(create=DataServiceError("read timeout"))
    queue = FakeQueue(client)
    job, message = new_job()
    with pytest.raises(SubmitError) as raised:
        await submitter(client, queue, redis).submit(job, message)
    assert raised.value.job_id == job.id and "will never run" in str(raised.value)
    assert queue.sent == []
    marker = await redis.get(markers.stop_key(job.id))
    assert markers.stopped_as(marker)[0] is JobStatus.FAILED  # a worker would not run it
    assert "did not record it" in (await voids(redis))[job.id]


@pytest.mark.parametrize("error", [QueueError("redis down"), RuntimeError("odd backend bug")])
async def test_a_refused_send_makes_the_job_void_and_marks_it_failed(redis, error) -> None:
    client = FakeClient()
    job, message = new_job()
    with pytest.raises(SubmitError) as raised:
        await submitter(client, FakeQueue(client, error), redis).submit(job, message)
    assert raised.value.job_id == job.id
    assert await redis.exists(markers.stop_key(job.id))
    name, reports = client.calls[-1]
    assert name == "reports" and reports[0].status is JobStatus.FAILED
    assert "queue refused" in reports[0].error


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
async def test_cancel_of_a_finished_job_is_a_conflict(redis, status: JobStatus) -> None:
    with pytest.raises(TransitionError) as raised:
        await cancel_job(FakeClient(status), redis, make_job(status), 60)  # type: ignore[arg-type]
    assert raised.value.current == status
    assert not await redis.exists(markers.stop_key(JOB_ID))


async def test_cancel_sets_the_stop_marker_before_it_records_the_cancel(redis) -> None:
    client = FakeClient(JobStatus.QUEUED)
    client.redis = redis
    job = await cancel_job(client, redis, make_job(JobStatus.QUEUED), 60)  # type: ignore[arg-type]
    assert job.status == JobStatus.CANCELLED
    assert client.seen_stop_marker is True
    assert await redis.get(markers.stop_key(JOB_ID)) == markers.CANCELLED.encode()
    assert 0 < await redis.ttl(markers.stop_key(JOB_ID)) <= 60


async def test_cancel_sends_rqs_stop_command_to_the_worker_running_the_job(redis) -> None:
    await redis.hset(f"rq:job:{JOB_ID}", "worker_name", "w1")
    pubsub = redis.pubsub()
    await pubsub.subscribe("rq:pubsub:w1")
    await pubsub.get_message(timeout=1)  # the subscription confirmation
    running = make_job(JobStatus.RUNNING)
    await cancel_job(FakeClient(JobStatus.RUNNING), redis, running, 60)  # type: ignore[arg-type]
    message = await pubsub.get_message(timeout=1)
    assert message is not None and b'"stop-job"' in message["data"]


async def test_without_redis_there_is_no_cancel(monkeypatch) -> None:
    redis = fakeredis.FakeAsyncRedis()

    async def down(*args: Any, **kwargs: Any) -> None:
        raise RedisConnectionError("Redis is down")

    monkeypatch.setattr(redis, "set", down)
    client = FakeClient(JobStatus.QUEUED)
    with pytest.raises(QueueError):
        await cancel_job(client, redis, make_job(JobStatus.QUEUED), 60)  # type: ignore[arg-type]
    assert client.calls == []  # nothing recorded


async def test_delete_needs_a_finished_job() -> None:
    client = FakeClient(JobStatus.RUNNING)
    with pytest.raises(TransitionError, match="cancel it before deleting"):
        await delete_job(client, make_job(JobStatus.RUNNING))  # type: ignore[arg-type]
    assert ("delete", JOB_ID) not in client.calls
    done = FakeClient(JobStatus.SUCCEEDED)
    await delete_job(done, make_job(JobStatus.SUCCEEDED))  # type: ignore[arg-type]
    assert ("delete", JOB_ID) in done.calls
