"""Enqueueing into RQ under the job's id: a duplicate is a no-op, even when racing."""

from __future__ import annotations

import threading

from rq import Queue
from rq.job import Job as RQJob

from backend.jobs import QueueMessage
from backend.settings import WorkerSettings
from backend.workers.enqueue import RUN_JOB, enqueue

SETTINGS = WorkerSettings(job_timeout_min=5, job_timeout_factor=2.0, job_timeout_default=60)


def _message(**fields) -> QueueMessage:
    return QueueMessage(**({"job_id": "a" * 24, "name": "echo"} | fields))


def test_the_rq_job_has_the_job_id_the_job_function_and_the_timeout(rq_redis):
    assert enqueue(rq_redis, _message(estimated_time=10, executor="priority"), SETTINGS)
    rq_job = RQJob.fetch("a" * 24, connection=rq_redis)
    assert rq_job.func_name == RUN_JOB and rq_job.args == ("a" * 24,)
    assert rq_job.timeout == 20 and rq_job.origin == "priority"
    assert Queue("priority", connection=rq_redis).job_ids == ["a" * 24]


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
