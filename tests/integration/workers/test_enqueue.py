"""Enqueueing into RQ under the job's id: a duplicate is a no-op, even when racing; a
job due later waits in RQ's scheduled registry until its time."""

from __future__ import annotations

import math
import threading
import time
import zlib
from datetime import UTC, datetime, timedelta

import msgspec
from rq import Queue
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from backend.jobs import QueueMessage
from backend.rqjobs import RUN_JOB, BatchEnqueuer, enqueue, fetch, message_of
from backend.settings import WorkerSettings
from backend.workers.scheduler import Scheduler

SETTINGS = WorkerSettings(job_timeout_min=5, job_timeout_factor=2.0, job_timeout_default=60)


def _message(**fields) -> QueueMessage:
    return QueueMessage(**({"job_id": "a" * 24, "name": "echo"} | fields))


def test_the_rq_job_has_the_job_id_the_job_function_and_the_timeout(rq_redis):
    message = _message(estimated_time=10, executor="priority", params={"x": 1})
    assert enqueue(rq_redis, message, SETTINGS)
    rq_job = fetch(rq_redis, "a" * 24)
    assert rq_job.func_name == RUN_JOB and rq_job.args[0] == "a" * 24
    assert message_of(rq_job) == message  # what the worker runs, without asking anyone
    assert rq_job.timeout == 20 and rq_job.origin == "priority"
    assert Queue("priority", connection=rq_redis).job_ids == ["a" * 24]
    # Stored as (zlib-compressed) JSON with RQ's JSONSerializer, never pickled.
    data = zlib.decompress(rq_redis.hget("rq:job:" + "a" * 24, "data"))
    assert msgspec.json.decode(data)[0] == RUN_JOB


def test_a_batch_enqueue_makes_the_same_rq_jobs_in_one_round_trip(rq_redis):
    messages = [_message(job_id=f"{n:024x}", params={"n": n}) for n in range(5)]
    enqueuer = BatchEnqueuer(rq_redis, SETTINGS)
    assert enqueuer.enqueue(messages) == [True] * 5
    assert enqueuer.enqueue([*messages[:2], _message(job_id="f" * 24)]) == [False, False, True]
    for message in messages:
        rq_job = fetch(rq_redis, message.job_id)
        assert message_of(rq_job) == message and rq_job.meta == {"attempt": 1}
    assert Queue("standard", connection=rq_redis).job_ids == [
        m.job_id for m in messages] + ["f" * 24]


def test_a_second_enqueue_of_the_same_job_is_a_no_op(rq_redis):
    assert enqueue(rq_redis, _message(), SETTINGS) is True
    assert enqueue(rq_redis, _message(), SETTINGS) is False
    assert Queue("standard", connection=rq_redis).job_ids == ["a" * 24]


def test_a_job_that_already_ran_is_not_enqueued_again(rq_redis):
    enqueue(rq_redis, _message(), SETTINGS)
    rq_redis.lpop(Queue("standard", connection=rq_redis).key)  # a worker took it
    assert enqueue(rq_redis, _message(), SETTINGS) is False
    assert Queue("standard", connection=rq_redis).count == 0


def test_racing_dispatchers_enqueue_a_job_once(rq_redis):
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def race() -> None:
        barrier.wait()
        results.append(enqueue(rq_redis, _message(), SETTINGS))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert Queue("standard", connection=rq_redis).job_ids == ["a" * 24]


def _due_in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def test_a_scheduled_job_waits_in_rqs_scheduled_registry_until_its_second(rq_redis):
    later = _message(run_at=_due_in(3600.4))
    now = _message(job_id="b" * 24, run_at=_due_in(-5))
    enqueuer = BatchEnqueuer(rq_redis, SETTINGS)
    assert enqueuer.enqueue([later, now]) == [True, True]
    registry = ScheduledJobRegistry("standard", connection=rq_redis)
    # Rounded up to the whole second: RQ never moves it before run_at.
    assert registry.get_job_ids() == [later.job_id]
    assert rq_redis.zscore(registry.key, later.job_id) == math.ceil(later.run_at.timestamp())
    assert fetch(rq_redis, later.job_id).get_status() == "scheduled"
    assert message_of(fetch(rq_redis, later.job_id)) == later
    assert Queue("standard", connection=rq_redis).job_ids == [now.job_id]  # past: at once
    # Unique, whichever way it is sent again.
    assert enqueuer.enqueue([later]) == [False]
    assert enqueue(rq_redis, later, SETTINGS) is False
    assert registry.get_job_ids() == [later.job_id]


def test_the_single_enqueue_schedules_the_same_way(rq_redis):
    later = _message(run_at=_due_in(600))
    assert enqueue(rq_redis, later, SETTINGS) is True
    registry = ScheduledJobRegistry("standard", connection=rq_redis)
    assert rq_redis.zscore(registry.key, later.job_id) == math.ceil(later.run_at.timestamp())
    assert Queue("standard", connection=rq_redis).count == 0


def test_the_executors_scheduler_moves_a_due_job_to_its_queue_not_before(rq_redis):
    message = _message(run_at=_due_in(1.5))
    assert BatchEnqueuer(rq_redis, SETTINGS).enqueue([message]) == [True]
    scheduler = Scheduler(["standard"], connection=rq_redis, serializer=JSONSerializer,
                          lock_ttl=2)
    queue = Queue("standard", connection=rq_redis)
    while not queue.job_ids:
        scheduler.move_due_jobs()
        time.sleep(0.05)
        assert datetime.now(UTC) < message.run_at + timedelta(seconds=5), "never moved"
    assert datetime.now(UTC) >= message.run_at
    assert fetch(rq_redis, message.job_id).get_status() == "queued"
    scheduler.release_locks()
