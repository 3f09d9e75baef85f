"""The kernel's submit/cancel/delete order against in-memory stand-ins (fast).

The same paths run against the real data service and queues in tests/integration/api.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backend.api import services
from backend.api.services import QueueRefusedError, cancel_job, delete_job, submit_job
from backend.errors import (
    DataServiceError,
    MessageTooLargeError,
    QueueError,
    TransitionError,
)
from backend.jobs import TERMINAL_STATUSES, Job, JobExecutionRequest, JobStatus, UpdateJob

JOB_ID = "0123456789abcdef01234567"


def make_job(status: JobStatus) -> Job:
    now = datetime.now(UTC)
    return Job(id=JOB_ID, name="echo", user_id="u", status=status, created_at=now,
               updated_at=now)


class FakeClient:
    """Records calls in order; ``fail`` maps a method name to the error it raises."""

    def __init__(self, status: JobStatus = JobStatus.CREATED, **fail: Exception) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.status = status
        self.fail = fail

    def _call(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        if name in self.fail:
            raise self.fail[name]

    async def create_empty_job(self, job: Any) -> str:
        self._call("create", job)
        return JOB_ID

    async def update_job(self, job_id: str, update: UpdateJob) -> Job:
        self._call("update", update.fields_set())
        self.status = update.status  # type: ignore[assignment]
        return make_job(self.status)

    async def get_job(self, job_id: str) -> Job:
        self._call("get", job_id)
        return make_job(self.status)

    async def delete_job(self, job_id: str) -> None:
        self._call("delete", job_id)


class FakeQueue:
    def __init__(self, client: FakeClient, error: Exception | None = None) -> None:
        self.client = client
        self.error = error
        self.sent: list[Any] = []

    async def send(self, message: Any) -> str:
        self.client.calls.append(("send", message.job_id))
        if self.error:
            raise self.error
        self.sent.append(message)
        return "1"


REQUEST = JobExecutionRequest(job_name="echo", user_id="u", estimated_time=1.0,
                              params={"x": 1})


async def test_submit_records_then_queues_then_marks_queued() -> None:
    client = FakeClient()
    queue = FakeQueue(client)
    assert await submit_job(client, queue, REQUEST, "priority", "t1") == JOB_ID  # type: ignore[arg-type]
    assert [name for name, _ in client.calls] == ["create", "send", "update"]
    assert client.calls[2][1] == {"status": JobStatus.QUEUED}
    message = queue.sent[0]
    assert (message.job_id, message.name, message.executor, message.params, message.trace_id) \
        == (JOB_ID, "echo", "priority", {"x": 1}, "t1")


@pytest.mark.parametrize("error", [QueueError("redis down"), RuntimeError("odd backend bug")])
async def test_refused_message_fails_the_job(error: Exception) -> None:
    client = FakeClient()
    with pytest.raises(QueueRefusedError) as raised:
        await submit_job(client, FakeQueue(client, error), REQUEST, "standard", "t")  # type: ignore[arg-type]
    assert raised.value.job_id == JOB_ID
    name, fields = client.calls[-1]
    assert name == "update" and fields["status"] == JobStatus.FAILED
    assert fields["error"].startswith("queue refused:") and str(error) in fields["error"]


async def test_store_down_sends_nothing() -> None:
    client = FakeClient(create=DataServiceError("down"))
    queue = FakeQueue(client)
    with pytest.raises(DataServiceError):
        await submit_job(client, queue, REQUEST, "standard", "t")  # type: ignore[arg-type]
    assert queue.sent == []


@pytest.mark.parametrize("error", [TransitionError("moved on", "running"),
                                   DataServiceError("blip")])
async def test_mark_queued_failure_still_answers(error: Exception) -> None:
    # The message is on the queue: the job will run, so the client gets its id.
    client = FakeClient(update=error)
    assert await submit_job(client, FakeQueue(client), REQUEST, "standard", "t") == JOB_ID  # type: ignore[arg-type]


async def test_oversized_params_refused_before_anything_is_recorded() -> None:
    client = FakeClient()
    big = JobExecutionRequest(job_name="echo", user_id="u", estimated_time=1,
                              params={"blob": "x" * 300_000})
    with pytest.raises(MessageTooLargeError, match="limit is 262144 bytes"):
        await submit_job(client, FakeQueue(client), big, "standard", "t")  # type: ignore[arg-type]
    assert client.calls == []


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
async def test_cancel_finished_job_is_a_conflict(status: JobStatus) -> None:
    with pytest.raises(TransitionError) as raised:
        await cancel_job(FakeClient(status), JOB_ID, "redis://127.0.0.1:1/0")  # type: ignore[arg-type]
    assert raised.value.current == status


# A queued job may start between the kernel's read and its write: it gets the stop too.
@pytest.mark.parametrize(("status", "stopped"), [(JobStatus.CREATED, False),
                                                 (JobStatus.QUEUED, True),
                                                 (JobStatus.RUNNING, True)])
async def test_cancel_stops_a_running_job(status: JobStatus, stopped: bool,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    stops: list[str] = []
    monkeypatch.setattr(services, "stop_running_job", lambda url, job_id: stops.append(job_id))
    job = await cancel_job(FakeClient(status), JOB_ID, "redis://x")  # type: ignore[arg-type]
    assert job.status == JobStatus.CANCELLED
    assert stops == ([JOB_ID] if stopped else [])


def test_stop_command_ignores_an_unreachable_redis() -> None:
    services.stop_running_job("redis://127.0.0.1:1/0", JOB_ID)  # no exception


async def test_delete_needs_a_finished_job() -> None:
    client = FakeClient(JobStatus.RUNNING)
    with pytest.raises(TransitionError, match="cancel it before deleting"):
        await delete_job(client, JOB_ID)  # type: ignore[arg-type]
    assert ("delete", JOB_ID) not in client.calls
    done = FakeClient(JobStatus.SUCCEEDED)
    await delete_job(done, JOB_ID)  # type: ignore[arg-type]
    assert ("delete", JOB_ID) in done.calls
