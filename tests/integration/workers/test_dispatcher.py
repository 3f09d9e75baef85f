"""The dispatcher on a real Redis Stream queue and Redis, with an in-memory data service.

The dispatcher makes no data-service request for a job it can enqueue: the worker is
the one that refuses to run a finished or deleted job.
"""

from __future__ import annotations

import uuid

import pytest
from rq import Queue
from rq.job import Job as RQJob

from backend.jobs import JobStatus, QueueMessage
from backend.queues.redis_stream import RedisStreamQueue
from backend.settings import QueueSettings
from backend.workers.dispatcher import Dispatcher
from backend.workers.rq_worker import TaskWorker
from tests.integration.workers.fakes import FakeDataService


class AsyncStore:
    """The async client's methods over the in-memory data service."""

    def __init__(self, store: FakeDataService) -> None:
        self.store = store

    async def get_job(self, job_id):
        return self.store.get_job(job_id)

    async def update_job(self, job_id, update):
        return self.store.update_job(job_id, update)


@pytest.fixture
async def setup(services, rq_redis, rq_redis_url):
    """A dispatcher sharing the fake data service of ``services`` (which RQ workers use)."""
    name = f"d-{uuid.uuid4().hex[:8]}"
    settings = services.settings
    settings.queue = QueueSettings(standard_queue_name=name, queue_visibility_timeout=1,
                                   queue_wait_seconds=0)
    queue = RedisStreamQueue(rq_redis_url, name, f"{name}-dlq", visibility_timeout=1,
                             max_receives=5, wait_seconds=0)
    store: FakeDataService = services.client  # type: ignore[assignment]
    dispatcher = Dispatcher(settings, queue, AsyncStore(store), rq_redis)  # type: ignore[arg-type]
    await queue.ensure()
    yield dispatcher, queue, store
    await queue.close()


def _message(job, **fields) -> QueueMessage:
    return QueueMessage(**({"job_id": job.id, "name": job.name, "params": job.params,
                            "estimated_time": job.estimated_time} | fields))


async def test_messages_become_rq_jobs_and_are_acked(setup, rq_redis):
    dispatcher, queue, store = setup
    jobs = [store.add("echo", {"n": n}) for n in range(3)]
    urgent = store.add("echo", {"n": 9}, executor="priority")
    messages = [_message(job) for job in jobs] + [_message(urgent, executor="priority")]
    await queue.send_batch(messages)
    assert await dispatcher.dispatch_once() == 4
    assert Queue("standard", connection=rq_redis).job_ids == [job.id for job in jobs]
    assert Queue("priority", connection=rq_redis).job_ids == [urgent.id]
    assert rq_redis.xlen(queue.name) == 0  # acked (acked entries are deleted)
    assert store.requests == []  # nothing asked of the data service


async def test_a_duplicated_message_enqueues_the_job_once(setup, rq_redis):
    dispatcher, queue, store = setup
    job = store.add("echo", {"n": 1})
    await queue.send(_message(job))
    await queue.send(_message(job))
    while await dispatcher.dispatch_once():
        pass
    assert Queue("standard", connection=rq_redis).job_ids == [job.id]
    assert rq_redis.xlen(queue.name) == 0


async def test_an_unknown_executor_fails_the_job_into_the_dead_letter_queue(setup, rq_redis):
    dispatcher, queue, store = setup
    job = store.add("echo", executor="gpu")
    await queue.send(_message(job, executor="gpu"))
    await dispatcher.dispatch_once()
    stored = store.get_job(job.id)
    assert stored.status == JobStatus.FAILED and "unknown executor 'gpu'" in stored.error
    assert [m.job_id for m in await queue.dead_letters()] == [job.id]
    assert not rq_redis.exists(RQJob.key_for(job.id))
    assert rq_redis.xlen(queue.name) == 0


@pytest.mark.usefixtures("keep_signal_handlers")
async def test_messages_of_finished_or_deleted_jobs_are_enqueued_but_never_run(setup, rq_redis):
    dispatcher, queue, store = setup
    cancelled = store.add("echo", status=JobStatus.CANCELLED)
    gone = store.add("echo")
    del store.jobs[gone.id]
    await queue.send_batch([_message(cancelled), _message(gone)])
    assert await dispatcher.dispatch_once() == 2
    assert rq_redis.xlen(queue.name) == 0
    assert store.requests == []

    TaskWorker(["standard"], connection=rq_redis).work(burst=True)
    for job in (cancelled, gone):  # the worker took each, and ran neither
        assert RQJob.fetch(job.id, connection=rq_redis).return_value() == "skipped"
    stored = store.get_job(cancelled.id)
    assert (stored.status, stored.attempts, stored.started_at) == ("cancelled", 0, None)
    assert store.updates == []


@pytest.mark.parametrize(("status", "dead_lettered"), [
    (JobStatus.CANCELLED, False),
    (JobStatus.FAILED, True),  # failed by this message before a crash cut it short
])
async def test_a_finished_job_for_an_unknown_executor(setup, rq_redis, status, dead_lettered):
    dispatcher, queue, store = setup
    job = store.add("echo", executor="gpu", status=status)
    await queue.send(_message(job, executor="gpu"))
    await dispatcher.dispatch_once()
    assert store.get_job(job.id).status == status
    assert [m.job_id for m in await queue.dead_letters()] == ([job.id] if dead_lettered else [])
    assert rq_redis.xlen(queue.name) == 0
