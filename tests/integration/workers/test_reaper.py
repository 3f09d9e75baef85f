"""Jobs of dead workers are retried or failed; retries wait in RQ's scheduled registry."""

from __future__ import annotations

import pytest
from rq import Queue
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.utils import current_timestamp

from backend.jobs import JobStatus, QueueMessage
from backend.workers import reaper
from backend.workers.enqueue import enqueue
from backend.workers.executor import WorkerExecutor
from backend.workers.rq_worker import TaskWorker


def _running_job(services, attempts: int, *, expired: bool = True, worker: str = "w1"):
    """A job that a worker took and then died with: as RQ and the data service see it."""
    job = services.client.add("echo", {"n": 1}, status=JobStatus.RUNNING, attempts=attempts)
    enqueue(services.redis, QueueMessage(job_id=job.id, name="echo"), services.settings.worker)
    services.redis.lpop(Queue("standard", connection=services.redis).key)
    registry = StartedJobRegistry("standard", connection=services.redis)
    score = current_timestamp() - 10 if expired else current_timestamp() + 600
    services.redis.zadd(registry.key, {f"{job.id}:exec-{worker}": score})
    services.redis.hset(f"rq:worker:{worker}", "current_job", job.id)
    return job


def test_a_job_whose_heartbeat_expired_is_retried_after_its_backoff(services):
    job = _running_job(services, attempts=1)
    assert reaper.sweep(services, ["standard", "priority"]) == [job.id]
    stored = services.client.get_job(job.id)
    assert stored.status == JobStatus.RETRYING and "stopped sending heartbeats" in stored.error
    assert job.id in ScheduledJobRegistry("standard", connection=services.redis)
    assert reaper.sweep(services, ["standard"]) == []  # claimed once

    executor = WorkerExecutor(services.settings, 0, ["standard"], services)
    executor.start()
    executor.supervise()  # its scheduler moves the due retry back to the queue
    assert Queue("standard", connection=services.redis).job_ids == [job.id]


@pytest.mark.usefixtures("keep_signal_handlers")
@pytest.mark.parametrize("rq_forgot_it", [False, True])
def test_the_attempt_after_a_lost_one_runs_with_the_next_number(services, rq_forgot_it):
    job = _running_job(services, attempts=1)
    if rq_forgot_it:  # then the reaper enqueues it afresh, from the data service's record
        RQJob.fetch(job.id, connection=services.redis).delete()
    assert reaper.sweep(services, ["standard"]) == [job.id]
    executor = WorkerExecutor(services.settings, 0, ["standard"], services)
    executor.start()
    executor.supervise()  # a retry due now (backoff 0) goes back to its queue
    TaskWorker(["standard"], connection=services.redis).work(burst=True)
    stored = services.client.get_job(job.id)
    assert (stored.status, stored.attempts) == ("succeeded", 2)
    assert services.client.attempts_reported(job.id) == [2]


def test_a_job_out_of_attempts_fails_into_the_dead_letter_queue(services):
    job = _running_job(services, attempts=services.settings.worker.max_attempts)
    assert reaper.sweep(services, ["standard"]) == [job.id]
    stored = services.client.get_job(job.id)
    assert stored.status == JobStatus.FAILED and "attempt 3 of 3" in stored.error
    assert [m.job_id for m, _ in services.dead_letters.sent] == [job.id]
    rq_job = RQJob.fetch(job.id, connection=services.redis)
    assert rq_job.get_status() == RQStatus.FAILED


def test_a_live_entry_is_left_alone_until_its_worker_is_known_dead(services):
    job = _running_job(services, attempts=1, expired=False, worker="w2")
    assert reaper.sweep(services, ["standard"]) == []
    assert services.client.get_job(job.id).status == JobStatus.RUNNING
    assert reaper.recover_worker(services, "w2", ["standard"]) == job.id
    assert services.client.get_job(job.id).status == JobStatus.RETRYING
    assert reaper.recover_worker(services, "w2", ["standard"]) is None


def test_a_job_that_finished_meanwhile_is_not_touched(services):
    job = _running_job(services, attempts=1)
    services.client.jobs[job.id].status = JobStatus.SUCCEEDED
    assert reaper.sweep(services, ["standard"]) == [job.id]
    assert services.client.get_job(job.id).status == JobStatus.SUCCEEDED
    assert job.id not in ScheduledJobRegistry("standard", connection=services.redis)
