"""Jobs through the whole system over HTTP, once on the Redis Stream queue, once on SQS.

Each scenario is what a user (or an operator) would notice: results arrive, failures
are retried then reported with their attempts, runaway jobs time out, cancels stick,
and lost processes or duplicated messages neither lose a job nor run it twice.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
from rq import Queue
from rq import Worker as RQWorker
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.registry import StartedJobRegistry

from backend.jobs import QueueMessage
from tests.e2e.conftest import WORKERS, System, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("system", ["redis", "sqs"], indirect=True)]


def test_fifty_jobs_all_succeed_with_their_results(system: System):
    texts = [f"job number {n} " + "word " * (n % 7) for n in range(50)]

    def submit(n: int) -> str:
        kind = ("echo", "wordcount", "checksum")[n % 3]
        return system.submit(kind, {"text": texts[n], "n": n})

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(submit, range(50)))
    assert len(set(ids)) == 50
    jobs = {job_id: system.wait_final(job_id, 120) for job_id in ids}
    for n, job_id in enumerate(ids):
        job = jobs[job_id]
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 1 and job["progress"] == 100
        if n % 3 == 0:
            assert job["result"] == {"text": texts[n], "n": n}
        elif n % 3 == 1:
            assert job["result"]["words"] == len(texts[n].split())
        else:
            assert job["result"]["algorithm"] == "sha256" and len(job["result"]["hexdigest"]) == 64


def test_a_failing_task_is_retried_then_fails_into_the_dead_letter_queue(system: System):
    job_id = system.submit("fail", {"message": "disk on fire"})
    seen = set()

    def finished():
        job = system.job(job_id)
        seen.add(job["status"])
        return job if job["status"] in {"failed", "succeeded", "cancelled"} else None

    job = wait_for(finished, 60, "the failing job to finish", interval=0.05)
    assert job["status"] == "failed"
    assert job["attempts"] == 3  # MAX_ATTEMPTS
    assert "disk on fire" in job["error"]
    assert "retrying" in seen  # between the attempts
    wait_for(lambda: job_id in system.dead_letter_ids(), 30, "the dead letter")


def test_a_job_that_fails_once_succeeds_on_its_retry(system: System):
    job = system.wait_final(system.submit("fail", {"succeed_on_attempt": 2}))
    assert (job["status"], job["attempts"], job["result"]) == ("succeeded", 2, {"attempt": 2})


def test_a_permanent_error_fails_at_once(system: System):
    job = system.wait_final(system.submit("wordcount", {"text": 42}))
    assert job["status"] == "failed" and job["attempts"] == 1
    assert "params.text" in job["error"]


def test_a_runaway_job_times_out_and_is_not_retried(system: System):
    # estimated 1 s -> timeout max(JOB_TIMEOUT_MIN=2, 1 * JOB_TIMEOUT_FACTOR=2) = 2 s
    job = system.wait_final(system.submit("simulate", {"duration": 60}, estimated_time=1))
    assert job["status"] == "failed" and job["attempts"] == 1
    assert "timeout" in job["error"]
    assert job["progress"] < 100


def test_cancel_before_and_during_a_run(system: System):
    # Both workers busy with long jobs, so the third one waits in the queue.
    long_ids = [system.submit("simulate", {"duration": 120}, estimated_time=120)
                for _ in range(WORKERS)]
    for job_id in long_ids:
        system.wait_status(job_id, "running")
    queued_id = system.submit("echo", {"never": "runs"})
    assert system.job(queued_id)["status"] == "queued"

    assert system.cancel(queued_id).json()["status"] == "cancelled"
    running_id = long_ids[0]
    assert system.cancel(running_id).json()["status"] == "cancelled"

    # The running job stops at once (its worker is free again long before 120 s)...
    registry = StartedJobRegistry("standard", connection=system.redis)
    wait_for(lambda: running_id not in registry.get_job_ids(cleanup=False), 30,
             "the cancelled job to stop")
    # ...and the cancelled queued job was taken out of RQ's queue by RQ's own cancel, so
    # rq-dashboard shows it cancelled and no worker ever picks it up.
    assert RQJob.fetch(queued_id, connection=system.redis).get_status() == RQStatus.CANCELED
    assert queued_id not in Queue("standard", connection=system.redis).job_ids
    queued = system.job(queued_id)
    assert queued["status"] == "cancelled"
    assert queued["attempts"] == 0 and queued["started_at"] is None and queued["result"] is None
    stopped = system.job(running_id)
    assert stopped["status"] == "cancelled" and stopped["progress"] < 100

    assert system.cancel(long_ids[1]).status_code == 200
    system.wait_final(long_ids[1])
    assert system.cancel(long_ids[1]).status_code == 409  # finished jobs stay finished


def test_a_duplicated_queue_message_runs_the_task_once(system: System):
    job_id = system.create_job("simulate", {"duration": 1})
    message = QueueMessage(job_id=job_id, name="simulate", params={"duration": 1},
                           estimated_time=1)
    system.send(message)
    system.send(message)
    job = system.wait_final(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 1
    # Both deliveries were handled (one enqueued, one recognised), and nothing is left over.
    log_text = lambda: system.dispatcher.log_path.read_text()  # noqa: E731
    wait_for(lambda: f"job {job_id} is already in RQ" in log_text(), 30,
             "the dispatcher to recognise the second message")
    ran = system.workers.log_path.read_text().count(f"job {job_id} (simulate) attempt")
    assert ran == 1
    assert system.queue_call(lambda queue: queue.depth()) == 0
    assert system.job(job_id)["attempts"] == 1


def test_workers_stop_gracefully_letting_a_running_job_finish(system: System):
    job_id = system.submit("simulate", {"duration": 2}, estimated_time=2)
    system.wait_status(job_id, "running")
    assert system.workers.stop() == 0  # SIGTERM: finish the job, then exit
    job = system.job(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 1
    system.start_workers()


def test_a_job_still_running_after_the_shutdown_grace_is_retried_later(system: System):
    system.workers.stop()
    system.start_workers(SHUTDOWN_GRACE="1")
    job_id = system.submit("simulate", {"duration": 3}, estimated_time=3)
    system.wait_status(job_id, "running")
    assert system.workers.stop() == 0  # graceful for 1 s, then the job's worker is killed
    job = system.job(job_id)
    assert job["status"] == "retrying" and "shutdown grace" in job["error"]

    system.start_workers()  # the job was put back: the next workers run it
    job = system.wait_final(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 2


def test_a_second_stop_signal_ends_the_shutdown_grace_at_once(system: System):
    system.workers.stop()
    workers = system.start_workers(SHUTDOWN_GRACE="120")
    job_id = system.submit("simulate", {"duration": 10}, estimated_time=10)
    system.wait_status(job_id, "running")
    workers.signal(signal.SIGTERM)  # warm: the job may take its 120 s...
    workers.wait_until(lambda: "got SIGTERM: stopping the workers" in
                       workers.log_path.read_text(), 10)
    workers.signal(signal.SIGTERM)  # ...cold: handed back now
    assert workers.proc is not None and workers.proc.wait(30) == 0
    job = system.job(job_id)
    assert job["status"] == "retrying" and "second stop signal" in job["error"], job

    system.start_workers()  # the job was put back: the next workers run it
    job = system.wait_final(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 2


def test_a_worker_killed_mid_job_does_not_lose_the_job(system: System):
    job_id = system.submit("simulate", {"duration": 3}, estimated_time=3)
    system.wait_status(job_id, "running")
    name = wait_for(lambda: RQJob.fetch(job_id, connection=system.redis).worker_name, 10,
                    "the job's worker name")
    worker = RQWorker.find_by_key(f"rq:worker:{name}", connection=system.redis)
    assert worker is not None and worker.pid
    os.kill(worker.pid, signal.SIGKILL)

    job = system.wait_final(job_id, 90)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 2  # the killed attempt counts
    assert job["worker_id"] != name
    wait_for(lambda: system.idle_workers() >= WORKERS, 30, "the worker to be replaced")


def test_a_dispatcher_killed_between_receive_and_ack_loses_nothing(system: System):
    assert system.dispatcher.stop() == 0  # SIGTERM: a clean exit
    crashing = system.start_dispatcher(DISPATCHER_EXIT_AFTER_RECEIVE="true")
    job_id = system.submit("echo", {"survives": "a crash"})
    wait_for(lambda: not crashing.alive(), 30, "the dispatcher to crash after receiving")
    assert crashing.proc is not None and crashing.proc.returncode == 3
    assert system.job(job_id)["status"] == "queued"  # received, never enqueued or acked

    system.start_dispatcher()  # the message comes back after the visibility timeout
    job = system.wait_final(job_id, 60)
    assert job["status"] == "succeeded" and job["result"] == {"survives": "a crash"}
    assert job["attempts"] == 1
