"""The dispatcher on a real Redis Stream queue and Redis.

The dispatcher asks the data service nothing: a job for an unknown executor is failed
through the report stream, and a worker is the one that refuses a stopped or finished job.
"""

from __future__ import annotations

import time
import uuid

import pytest
import redis.asyncio as aioredis
from bson import ObjectId
from rq import Queue

from backend import markers
from backend.dispatcher.dispatch import Dispatcher, drained_key
from backend.jobs import JobStatus, QueueMessage
from backend.queues.redis_stream import RedisStreamQueue
from backend.rqjobs import fetch
from backend.settings import QueueSettings
from backend.workers.worker import TaskWorker
from tests.integration.workers.conftest import reports, statuses


@pytest.fixture
async def setup(connections, rq_redis, rq_redis_url):
    name = f"d-{uuid.uuid4().hex[:8]}"
    settings = connections.settings
    settings.queue = QueueSettings(standard_queue_name=name, queue_visibility_timeout=1,
                                   queue_wait_seconds=0)
    queue = RedisStreamQueue(rq_redis_url, name, f"{name}-dlq", visibility_timeout=1,
                             max_receives=5, wait_seconds=0)
    settings.redis.redis_url = rq_redis_url
    streams = aioredis.Redis.from_url(rq_redis_url)
    dispatcher = Dispatcher(settings, queue, rq_redis, streams)
    await queue.ensure()
    yield dispatcher, queue
    await queue.close()
    await streams.aclose()


def _message(executor: str = "standard", **fields) -> QueueMessage:
    return QueueMessage(job_id=str(ObjectId()), name="echo", executor=executor, **fields)


async def test_messages_become_rq_jobs_and_are_acked(setup, rq_redis):
    dispatcher, queue = setup
    messages = [_message(params={"n": n}) for n in range(3)]
    urgent = _message("priority")
    await queue.send_batch([*messages, urgent])
    assert await dispatcher.dispatch_once() == 4
    assert Queue("standard", connection=rq_redis).job_ids == [m.job_id for m in messages]
    assert Queue("priority", connection=rq_redis).job_ids == [urgent.job_id]
    rq_job = fetch(rq_redis, messages[0].job_id)
    assert rq_job.func_name == "backend.workers.runner.run_job"
    assert rq_job.args[0] == messages[0].job_id and rq_job.meta["attempt"] == 1
    assert rq_redis.xlen(queue.name) == 0  # acked (acked entries are deleted)
    assert b"rq:queue:standard" in rq_redis.smembers("rq:queues")  # rq-dashboard lists it


async def test_a_duplicated_message_enqueues_the_job_once(setup, rq_redis):
    dispatcher, queue = setup
    message = _message()
    await queue.send(message)
    await queue.send(message)
    while await dispatcher.dispatch_once():
        pass
    assert Queue("standard", connection=rq_redis).job_ids == [message.job_id]
    assert rq_redis.xlen(queue.name) == 0


async def test_an_unknown_executor_fails_the_job_with_its_dead_letter(setup, rq_redis):
    dispatcher, queue = setup
    message = _message("gpu")
    await queue.send(message)
    await dispatcher.dispatch_once()
    [end] = reports(rq_redis, message.job_id)
    assert end.status is JobStatus.FAILED and "unknown executor 'gpu'" in end.error
    assert end.dead_letter == message  # the recorder puts it on the dead-letter queue
    assert not rq_redis.exists(f"rq:job:{message.job_id}")
    assert rq_redis.xlen(queue.name) == 0


@pytest.mark.usefixtures("keep_signal_handlers")
async def test_messages_of_stopped_or_finished_jobs_are_enqueued_but_never_run(setup, rq_redis):
    dispatcher, queue = setup
    cancelled, done = _message(), _message()
    rq_redis.set(markers.stop_key(cancelled.job_id), markers.CANCELLED)
    rq_redis.set(markers.done_key(done.job_id), b"1")
    await queue.send_batch([cancelled, done])
    assert await dispatcher.dispatch_once() == 2
    TaskWorker(["standard"], connection=rq_redis).work(burst=True)
    for message in (cancelled, done):  # the worker took each, and ran neither
        assert fetch(rq_redis, message.job_id).return_value() == "skipped"
    assert statuses(rq_redis, cancelled.job_id) == [("cancelled", 1)]
    assert statuses(rq_redis, done.job_id) == []  # it has finished: nothing more to say


async def test_an_empty_or_short_receive_records_when_the_queue_was_drained(setup, rq_redis):
    dispatcher, queue = setup
    before = time.time()
    await dispatcher.dispatch_once()
    drained = int(rq_redis.get(drained_key(queue.name)))
    assert before * 1000 - 1000 <= drained <= time.time() * 1000
