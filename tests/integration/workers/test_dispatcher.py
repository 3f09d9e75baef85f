"""The dispatcher on a real Redis Stream queue and Redis, with an in-memory data service."""

from __future__ import annotations

import uuid

import pytest
from rq import Queue
from rq.job import Job as RQJob

from backend.jobs import JobStatus, QueueMessage
from backend.queues.redis_stream import RedisStreamQueue
from backend.settings import QueueSettings
from backend.workers.dispatcher import Dispatcher
from tests.integration.workers.fakes import FakeDataService, worker_settings


class AsyncStore:
    """The async client's methods over the in-memory data service."""

    def __init__(self, store: FakeDataService) -> None:
        self.store = store

    async def get_job(self, job_id):
        return self.store.get_job(job_id)

    async def update_job(self, job_id, update):
        return self.store.update_job(job_id, update)


@pytest.fixture
async def setup(rq_redis, rq_redis_url):
    name = f"d-{uuid.uuid4().hex[:8]}"
    settings = worker_settings()
    settings.redis.redis_url = rq_redis_url
    settings.queue = QueueSettings(standard_queue_name=name, queue_visibility_timeout=1,
                                   queue_wait_seconds=0)
    queue = RedisStreamQueue(rq_redis_url, name, f"{name}-dlq", visibility_timeout=1,
                             max_receives=5, wait_seconds=0)
    store = FakeDataService()
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


async def test_finished_and_deleted_jobs_are_dropped(setup, rq_redis):
    dispatcher, queue, store = setup
    cancelled = store.add("echo", status=JobStatus.CANCELLED)
    gone = store.add("echo")
    del store.jobs[gone.id]
    await queue.send_batch([_message(cancelled), _message(gone)])
    assert await dispatcher.dispatch_once() == 2
    assert Queue("standard", connection=rq_redis).count == 0
    assert rq_redis.xlen(queue.name) == 0
