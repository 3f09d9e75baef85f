"""Jobs of dead workers are retried or failed; retries wait in RQ's scheduled registry.

Recovery needs Redis only: the RQ job carries the message and the attempt number, and
the recovery's end report goes to the report stream.
"""

from __future__ import annotations

import pytest
import redis
from bson import ObjectId
from rq import Queue
from rq.job import JobStatus as RQStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.utils import current_timestamp

from backend import markers
from backend.jobs import JobStatus, QueueMessage
from backend.rqjobs import enqueue, fetch, set_next_attempt
from backend.workers import reaper
from backend.workers.executor import WorkerExecutor
from backend.workers.worker import TaskWorker
from tests.integration.workers.conftest import reports, statuses


def _running_job(connections, attempt: int, *, expired: bool = True,
                 worker: str = "w1") -> str:
    """A job that a worker took (as attempt ``attempt``) and then died with."""
    job_id = str(ObjectId())
    message = QueueMessage(job_id=job_id, name="echo", params={"n": 1})
    enqueue(connections.redis, message, connections.settings.worker)
    set_next_attempt(fetch(connections.redis, job_id), attempt)
    connections.redis.lpop(Queue("standard", connection=connections.redis).key)
    registry = StartedJobRegistry("standard", connection=connections.redis)
    score = current_timestamp() - 10 if expired else current_timestamp() + 600
    connections.redis.zadd(registry.key, {f"{job_id}:exec-{worker}": score})
    connections.redis.hset(f"rq:worker:{worker}", "current_job", job_id)
    return job_id


def _sweep(connections, queues=("standard", "priority")) -> list[str]:
    return reaper.sweep(connections.redis, connections.writer, connections.settings.worker,
                        list(queues))


def test_a_job_whose_heartbeat_expired_is_retried_after_its_backoff(connections):
    job_id = _running_job(connections, attempt=1)
    assert _sweep(connections) == [job_id]
    end = reports(connections.redis, job_id)[-1]
    assert (end.status, end.attempt) == (JobStatus.RETRYING, 1)
    assert "stopped sending heartbeats" in end.error
    assert job_id in ScheduledJobRegistry("standard", connection=connections.redis)
    assert _sweep(connections) == []  # claimed once

    executor = WorkerExecutor(connections.settings, 0, ["standard"], connections)
    executor.start()
    executor.supervise()  # its scheduler moves the due retry back to the queue
    assert Queue("standard", connection=connections.redis).job_ids == [job_id]


@pytest.mark.usefixtures("keep_signal_handlers")
def test_the_attempt_after_a_lost_one_runs_with_the_next_number(connections):
    job_id = _running_job(connections, attempt=1)
    assert _sweep(connections) == [job_id]
    executor = WorkerExecutor(connections.settings, 0, ["standard"], connections)
    executor.start()
    executor.supervise()  # a retry due now (backoff 0) goes back to its queue
    TaskWorker(["standard"], connection=connections.redis).work(burst=True)
    assert statuses(connections.redis, job_id) == [("retrying", 1), ("succeeded", 2)]


def test_a_job_out_of_attempts_fails_and_carries_its_dead_letter(connections):
    job_id = _running_job(connections, attempt=connections.settings.worker.max_attempts)
    assert _sweep(connections) == [job_id]
    end = reports(connections.redis, job_id)[-1]
    assert end.status is JobStatus.FAILED and "attempt 3 of 3" in end.error
    assert end.dead_letter is not None and end.dead_letter.job_id == job_id
    assert fetch(connections.redis, job_id).get_status() == RQStatus.FAILED


def test_a_live_entry_is_left_alone_until_its_worker_is_known_dead(connections):
    job_id = _running_job(connections, attempt=1, expired=False, worker="w2")
    assert _sweep(connections) == []
    assert reports(connections.redis, job_id) == []
    args = (connections.redis, connections.writer, connections.settings.worker, "w2",
            ["standard"])
    assert reaper.recover_worker(*args) == job_id
    assert statuses(connections.redis, job_id) == [("retrying", 1)]
    assert reaper.recover_worker(*args) is None


def test_a_job_whose_end_was_reported_is_not_touched(connections):
    job_id = _running_job(connections, attempt=1)
    connections.redis.set(markers.done_key(job_id), b"1")
    assert _sweep(connections) == [job_id]
    assert reports(connections.redis, job_id) == []
    assert job_id not in ScheduledJobRegistry("standard", connection=connections.redis)


def test_a_cancelled_job_is_ended_cancelled_not_retried(connections):
    job_id = _running_job(connections, attempt=1)
    connections.redis.set(markers.stop_key(job_id), markers.CANCELLED)
    assert _sweep(connections) == [job_id]
    assert statuses(connections.redis, job_id) == [("cancelled", 1)]
    assert job_id not in ScheduledJobRegistry("standard", connection=connections.redis)


def test_a_recovery_that_fails_puts_its_claim_back_due_later(connections, monkeypatch):
    job_id = _running_job(connections, attempt=1)

    def redis_fails(*args, **kwargs):
        raise redis.ConnectionError("Redis went away mid-recovery")

    monkeypatch.setattr(connections.writer, "send_end", redis_fails)
    assert _sweep(connections) == []
    key = StartedJobRegistry("standard", connection=connections.redis).key
    [(member, score)] = connections.redis.zrange(key, 0, -1, withscores=True)
    assert member.decode().startswith(job_id)
    # Not due again at once (it would be claimed by this executor in a tight loop), but
    # soon, by whichever executor sweeps next.
    assert current_timestamp() < score <= current_timestamp() + reaper.RECLAIM_BACKOFF
    assert _sweep(connections) == []
    monkeypatch.undo()
    connections.redis.zadd(key, {member: current_timestamp() - 1})
    assert _sweep(connections) == [job_id]


def test_a_dead_schedulers_lock_lets_another_executor_move_retries_soon(connections):
    dead = WorkerExecutor(connections.settings, 0, ["standard"], connections)
    dead.start()
    dead.supervise()  # takes the scheduler lock, then "dies" without releasing it
    lock = connections.redis.ttl("rq:scheduler-lock:standard")
    # A few heartbeats (0.2 s here), not RQ's minute.
    assert 0 < lock <= 2
