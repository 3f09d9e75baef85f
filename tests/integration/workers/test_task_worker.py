"""Our RQ worker class on a real Redis, in this process (burst mode), fake data service."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from rq.command import send_stop_job_command
from rq.job import Job as RQJob
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from backend.errors import DataServiceError
from backend.jobs import JobStatus, QueueMessage, UpdateJob
from backend.tasks import task
from backend.workers import reaper
from backend.workers.enqueue import RUN_JOB, enqueue, rq_queue
from backend.workers.rq_worker import TaskWorker

pytestmark = pytest.mark.usefixtures("keep_signal_handlers")
FINISHED: list[str] = []


@task("test-worker-block")
def _block(ctx):
    time.sleep(30)  # not cooperative: only the stop command can end it early
    FINISHED.append(ctx.job_id)


def _submit(services, name, params=None, **fields):
    job = services.client.add(name, params, **fields)
    message = QueueMessage(job_id=job.id, name=name, params=params,
                           estimated_time=fields.get("estimated_time"))
    assert enqueue(services.redis, message, services.settings.worker)
    return job


def _work(services, queues=("standard",)):
    worker = TaskWorker(list(queues), connection=services.redis,
                        heartbeat=services.settings.worker.worker_heartbeat)
    worker.work(burst=True)
    return worker


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_jobs_run_in_the_worker_and_report_their_results(services):
    jobs = [_submit(services, "checksum", {"text": f"text {n}"}) for n in range(5)]
    worker = _work(services)
    requests = {job.id: services.client.requests_for(job.id) for job in jobs}
    for job in jobs:
        stored = services.client.get_job(job.id)
        assert stored.status == JobStatus.SUCCEEDED and stored.attempts == 1
        assert stored.result["algorithm"] == "sha256"
        assert stored.worker_id == worker.name
        # Two requests per job: `running` (which answers name and params) and the result.
        assert requests[job.id] == ["PUT", "PUT"]


def test_a_retry_goes_back_to_the_queue_and_runs_again(services):
    job = _submit(services, "fail", {"succeed_on_attempt": 3})
    _work(services)  # backoff 0 in these settings: RQ requeues at once, burst runs it again
    requests = services.client.requests_for(job.id)
    stored = services.client.get_job(job.id)
    assert stored.status == JobStatus.SUCCEEDED and stored.attempts == 3
    assert services.client.statuses(job.id) == ["running", "retrying"] * 2 + [
        "running", "succeeded"]
    # The attempt number travels with the RQ job: never read from the data service.
    assert services.client.attempts_reported(job.id) == [1, 2, 3]
    assert requests == ["PUT"] * 6


def test_a_running_report_whose_answer_was_lost_is_sent_again_as_the_same_attempt(
        services, monkeypatch):
    store = services.client
    job = _submit(services, "echo", {"n": 1})
    apply = store.update_job

    def update_job(job_id, update):
        answer = apply(job_id, update)
        if len(store.updates) == 1:  # the first PUT is applied, its answer lost
            raise DataServiceError("data service unavailable: read timeout")
        return answer

    monkeypatch.setattr(store, "update_job", update_job)
    _work(services)
    stored = store.get_job(job.id)
    assert (stored.status, stored.attempts, stored.result) == ("succeeded", 1, {"n": 1})
    assert store.attempts_reported(job.id) == [1, 1]


def test_a_job_enqueued_without_an_attempt_number_asks_the_data_service_once(services):
    # As an older dispatcher enqueued it (a retry of attempt 1 still waiting in RQ).
    store = services.client
    job = store.add("echo", {"n": 1}, status=JobStatus.RETRYING, attempts=1)
    rq_queue(services.redis, "standard").enqueue_call(RUN_JOB, args=(job.id,), job_id=job.id)
    _work(services)
    assert store.requests_for(job.id) == ["GET", "PUT", "PUT"]
    stored = store.get_job(job.id)
    assert (stored.status, stored.attempts) == ("succeeded", 2)


def test_rqs_stop_job_command_cancels_a_running_task(services):
    job = _submit(services, "test-worker-block")

    def cancel_like_the_kernel():
        _wait_for(lambda: services.client.get_job(job.id).status == JobStatus.RUNNING)
        services.client.update_job(job.id, UpdateJob(status=JobStatus.CANCELLED))
        _wait_for(lambda: RQJob.fetch(job.id, connection=services.redis).worker_name)
        send_stop_job_command(services.redis, job.id)

    threading.Thread(target=cancel_like_the_kernel, daemon=True).start()
    _work(services)
    assert job.id not in FINISHED  # the 30 s sleep was interrupted
    assert services.client.get_job(job.id).status == JobStatus.CANCELLED
    assert services.client.statuses(job.id) == ["running", "cancelled"]


def test_a_live_workers_long_job_keeps_its_heartbeat_and_is_not_reaped(services):
    # heartbeat 0.2 s: the started-registry entry would expire after 2 s without beats.
    job = _submit(services, "simulate", {"duration": 3}, estimated_time=3)
    registry = StartedJobRegistry("standard", connection=services.redis)
    reaped: list[str] = []

    def sweep_while_running():
        _wait_for(lambda: services.client.get_job(job.id).status == JobStatus.RUNNING)
        while services.client.get_job(job.id).status == JobStatus.RUNNING:
            reaped.extend(reaper.sweep(services, ["standard"]))
            time.sleep(0.1)

    sweeper = threading.Thread(target=sweep_while_running, daemon=True)
    sweeper.start()
    _work(services)
    sweeper.join(10)
    assert reaped == []
    assert services.client.get_job(job.id).status == JobStatus.SUCCEEDED
    assert registry.get_job_ids(cleanup=False) == []


def test_a_job_that_failed_for_good_shows_as_failed_in_rq_too(services):
    job = _submit(services, "fail", {"permanent": True, "message": "bad input"})
    _work(services)
    assert services.client.get_job(job.id).status == JobStatus.FAILED
    rq_job = RQJob.fetch(job.id, connection=services.redis)
    assert rq_job.get_status() == "failed"  # rq-dashboard lists it with its traceback
    assert "bad input" in rq_job.latest_result().exc_string
    assert [m.job_id for m, _ in services.dead_letters.sent] == [job.id]


def test_a_cold_shutdown_mid_job_puts_the_job_back_for_a_retry(services):
    job = _submit(services, "test-worker-block")
    main = threading.main_thread().ident

    def press_ctrl_c_twice():
        _wait_for(lambda: services.client.get_job(job.id).status == JobStatus.RUNNING)
        signal.pthread_kill(main, signal.SIGTERM)  # warm: finish the job, then stop
        time.sleep(1.2)  # RQ ignores a second signal within a second (duplicate delivery)
        signal.pthread_kill(main, signal.SIGTERM)  # cold: stop now

    threading.Thread(target=press_ctrl_c_twice, daemon=True).start()
    _work(services)
    assert job.id not in FINISHED
    stored = services.client.get_job(job.id)
    assert stored.status == JobStatus.RETRYING and "shut down mid-job" in stored.error
    assert job.id in ScheduledJobRegistry("standard", connection=services.redis)
    assert RQJob.fetch(job.id, connection=services.redis).meta["attempt"] == 2
