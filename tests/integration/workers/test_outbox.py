"""Final reports survive a data service (or dead-letter queue) that is down when a job ends.

Real Redis holds the outbox; the data service and the dead-letter queue are the fakes,
switched off and on again.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from rq import Queue
from rq.registry import StartedJobRegistry
from rq.utils import current_timestamp

from backend.errors import DataServiceError, PermanentError
from backend.jobs import JobStatus, QueueMessage, UpdateJob
from backend.tasks import task
from backend.workers import outbox, reaper
from backend.workers.enqueue import enqueue
from backend.workers.executor import WorkerExecutor
from backend.workers.runner import run_job
from backend.workers.services import WorkerServices, get_services


@task("test-outbox-outage")
def _outage(ctx):
    """Takes the data service down as it finishes (on the attempts in params.outage_on)."""
    if ctx.attempt in ctx.params.get("outage_on", [1]):
        get_services().client.down = True
    if ctx.params.get("succeed_on_attempt", 1) > ctx.attempt:
        raise RuntimeError(f"attempt {ctx.attempt} broke")
    if ctx.params.get("permanent"):
        raise PermanentError("no use retrying")
    return {"attempt": ctx.attempt}


def _pending_ids(services) -> list[str]:
    return [entry.job_id for entry in outbox.pending(services)]


def test_a_result_reported_during_an_outage_is_delivered_by_the_sweep(services):
    store = services.client
    job = store.add("test-outbox-outage")
    assert run_job(job.id) == "succeeded"  # the task is done, its report is not
    assert store.jobs[job.id].status == JobStatus.RUNNING
    assert _pending_ids(services) == [job.id]

    executor = WorkerExecutor(services.settings, 0, ["standard"], services)
    executor.supervise()  # still down: the entry stays
    assert _pending_ids(services) == [job.id]

    store.down = False
    deadline = time.monotonic() + 20
    while store.jobs[job.id].status == JobStatus.RUNNING and time.monotonic() < deadline:
        executor.supervise()  # sweeps every WORKER_HEARTBEAT
        time.sleep(0.05)
    stored = store.get_job(job.id)
    assert (stored.status, stored.result, stored.progress) == ("succeeded", {"attempt": 1}, 100)
    assert store.statuses(job.id) == ["running", "succeeded"]
    assert _pending_ids(services) == []


def test_a_failure_and_its_dead_letter_wait_until_both_are_back(services):
    store, dead_letters = services.client, services.dead_letters
    job = store.add("test-outbox-outage", {"permanent": True})
    dead_letters.down = True
    with pytest.raises(PermanentError, match="no use retrying"):
        run_job(job.id)
    assert _pending_ids(services) == [job.id]

    store.down = False
    assert outbox.sweep(services) == [job.id]  # recorded as failed; the queue is still down
    stored = store.get_job(job.id)
    assert stored.status == JobStatus.FAILED and "no use retrying" in stored.error
    assert dead_letters.sent == [] and _pending_ids(services) == [job.id]

    dead_letters.down = False
    assert outbox.sweep(services) == [job.id]
    [(message, reason)] = dead_letters.sent
    assert message.job_id == job.id and message.attempt == 1 and "no use retrying" in reason
    assert store.statuses(job.id) == ["running", "failed"]  # the failure was sent once
    assert _pending_ids(services) == []


def test_a_pending_retrying_report_goes_out_before_the_next_attempt_starts(services):
    store = services.client
    job = store.add("test-outbox-outage", {"succeed_on_attempt": 2})
    run_job(job.id)  # attempt 1 fails while the data service goes down: `retrying` pending
    assert _pending_ids(services) == [job.id]
    store.down = False
    assert run_job(job.id) == "succeeded"  # no sweep ran: the next attempt flushed it
    assert store.statuses(job.id) == ["running", "retrying", "running", "succeeded"]
    assert _pending_ids(services) == []


@pytest.mark.parametrize("meanwhile", ["cancelled", "deleted"])
def test_a_report_refused_for_good_leaves_the_outbox(services, meanwhile):
    store, dead_letters = services.client, services.dead_letters
    job = store.add("test-outbox-outage", {"permanent": True})
    with pytest.raises(PermanentError):
        run_job(job.id)
    store.down = False
    if meanwhile == "cancelled":  # the owner cancelled it while the failure was pending
        store.update_job(job.id, UpdateJob(status=JobStatus.CANCELLED))
    else:
        del store.jobs[job.id]
    assert outbox.sweep(services) == [job.id]  # 409 / 404: settled, not sent again
    assert _pending_ids(services) == []
    assert dead_letters.sent == []  # the job did not end failed
    if meanwhile == "cancelled":
        assert store.get_job(job.id).status == JobStatus.CANCELLED


def test_two_executors_sweeping_at_once_deliver_each_report_once(services, rq_redis_url,
                                                                 monkeypatch):
    store, dead_letters = services.client, services.dead_letters
    sent: list[str] = []
    accept = store.update_job

    def update_job(job_id, update):
        sent.append(job_id)
        return accept(job_id, update)

    store.down = True
    jobs = [store.add("echo", status=JobStatus.RUNNING, attempts=1) for _ in range(6)]
    for n, job in enumerate(jobs):
        failed = n % 2 == 1
        update = (UpdateJob(status=JobStatus.FAILED, error="broke") if failed
                  else UpdateJob(status=JobStatus.SUCCEEDED, result={"n": n}))
        message = QueueMessage(job_id=job.id, name="echo") if failed else None
        with pytest.raises(DataServiceError):
            outbox.report(services, job.id, 1, update, message, "broke")
    assert _pending_ids(services) == [job.id for job in jobs]  # oldest first

    store.down, store.latency = False, 0.05  # slow enough for the two sweeps to overlap
    monkeypatch.setattr(store, "update_job", update_job)
    executors = [WorkerServices(services.settings, redis_client=redis.Redis.from_url(rq_redis_url),
                                client=store, dead_letters=dead_letters) for _ in range(2)]
    settled: list[list[str]] = [[], []]
    start = threading.Barrier(2)

    def sweep(n: int) -> None:
        start.wait()
        settled[n] = outbox.sweep(executors[n])

    threads = [threading.Thread(target=sweep, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for executor in executors:
        executor.redis.close()
    assert sorted(settled[0] + settled[1]) == sorted(job.id for job in jobs)
    assert sorted(sent) == sorted(job.id for job in jobs)  # one PUT each, no second try
    for n, job in enumerate(jobs):
        assert store.statuses(job.id) == ["failed" if n % 2 else "succeeded"]
    assert sorted(m.job_id for m, _ in dead_letters.sent) == sorted(j.id for j in jobs[1::2])
    assert _pending_ids(services) == []


def test_the_reaper_keeps_a_dead_letter_the_queue_did_not_take(services):
    # A job out of attempts whose worker died: failed by the reaper while the queue is down.
    store, dead_letters = services.client, services.dead_letters
    attempts = services.settings.worker.max_attempts
    job = store.add("echo", status=JobStatus.RUNNING, attempts=attempts)
    enqueue(services.redis, QueueMessage(job_id=job.id, name="echo"), services.settings.worker)
    services.redis.lpop(Queue("standard", connection=services.redis).key)
    registry = StartedJobRegistry("standard", connection=services.redis)
    services.redis.zadd(registry.key, {f"{job.id}:exec-w1": current_timestamp() - 10})
    dead_letters.down = True
    assert reaper.sweep(services, ["standard"]) == [job.id]
    assert store.get_job(job.id).status == JobStatus.FAILED
    assert dead_letters.sent == [] and _pending_ids(services) == [job.id]

    dead_letters.down = False
    assert outbox.sweep(services) == [job.id]
    assert [m.job_id for m, _ in dead_letters.sent] == [job.id]
    assert store.statuses(job.id) == ["failed"]
