"""The job function and its hooks, against an in-memory data service.

Reports go through the outbox, which lives in Redis: a real one (the session's).
``run_job`` is called here outside RQ, so no RQ job carries the attempt number and the
worker asks the data service for it (as for a job an older dispatcher enqueued); the
number carried by RQ is tested with a real worker in tests/integration/workers.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from rq import Retry
from rq.timeouts import JobTimeoutException

from backend.errors import JobCancelledError, PermanentError
from backend.jobs import JobStatus, UpdateJob
from backend.tasks import load_task_modules, task
from backend.workers import cancel
from backend.workers.middleware import retry_delay
from backend.workers.runner import run_job
from backend.workers.services import set_services
from tests.integration.workers.fakes import fake_services, worker_settings

load_task_modules()
RAN: list[str] = []


@task("test-unit-count")
def _count(ctx):
    RAN.append(ctx.job_id)
    ctx.progress(50)
    return {"ran": len(RAN)}


@task("test-unit-timeout")
def _times_out(ctx):
    raise JobTimeoutException("Task exceeded maximum timeout value (2 seconds)")


@task("test-unit-not-json")
def _not_json(ctx):
    return {"handle": object()}


@task("test-unit-block")
def _block(ctx):
    time.sleep(30)  # not cooperative: only the stop signal can end it early
    RAN.append(ctx.job_id)
    return "slept"


@pytest.fixture
def services(redis_url):
    connection = redis.Redis.from_url(redis_url)
    services = fake_services(worker_settings(max_attempts=3, retry_backoff_base=0.5,
                                             retry_backoff_max=1.5), connection)
    set_services(services)
    yield services
    set_services(None)
    connection.close()


def test_a_job_runs_and_reports_its_result(services):
    store = services.client
    job = store.add("echo", {"greeting": "hi"})
    assert run_job(job.id) == "succeeded"
    stored = store.get_job(job.id)
    assert (stored.status, stored.result, stored.progress, stored.attempts) == (
        "succeeded", {"greeting": "hi"}, 100.0, 1)
    assert store.statuses(job.id) == ["running", "succeeded"]
    assert stored.worker_id


def test_a_failing_job_retries_with_backoff_then_fails_into_the_dead_letter_queue(services):
    store = services.client
    job = store.add("fail", {"message": "boom"})
    delays = []
    for _ in range(2):
        answer = run_job(job.id)
        assert isinstance(answer, Retry)
        delays.append(answer.intervals[0])
        assert store.get_job(job.id).status == JobStatus.RETRYING
    assert delays == [1.5, 2.0]  # 0.5 s and 1 s, plus RQ's whole-second rounding
    with pytest.raises(RuntimeError, match="boom"):  # so RQ shows it failed too
        run_job(job.id)
    stored = store.get_job(job.id)
    assert stored.status == JobStatus.FAILED and stored.attempts == 3
    assert "boom" in stored.error and "attempt 3 of 3" in stored.error
    [(message, reason)] = services.dead_letters.sent
    assert message.job_id == job.id and message.attempt == 3 and "boom" in reason


def test_a_retried_job_can_succeed_on_a_later_attempt(services):
    store = services.client
    job = store.add("fail", {"succeed_on_attempt": 2})
    assert isinstance(run_job(job.id), Retry)
    assert run_job(job.id) == "succeeded"
    assert store.get_job(job.id).result == {"attempt": 2}
    assert store.statuses(job.id) == ["running", "retrying", "running", "succeeded"]


@pytest.mark.parametrize(("name", "params", "error"), [
    ("fail", {"permanent": True, "message": "no use"}, "no use"),
    ("no-such-task", {}, "unknown task 'no-such-task'"),
    ("test-unit-timeout", {}, "timeout"),
    ("test-unit-not-json", {}, "not JSON"),
])
def test_permanent_errors_fail_at_once(services, name, params, error):
    store = services.client
    job = store.add(name, params)
    with pytest.raises(PermanentError):
        run_job(job.id)
    stored = store.get_job(job.id)
    assert stored.status == JobStatus.FAILED and stored.attempts == 1
    assert error in stored.error
    assert [m.job_id for m, _ in services.dead_letters.sent] == [job.id]


@pytest.mark.parametrize("status", [JobStatus.CANCELLED, JobStatus.SUCCEEDED])
def test_a_job_that_is_no_longer_waiting_never_runs(services, status):
    store = services.client
    job = store.add("test-unit-count", status=status)
    before = len(RAN)
    assert run_job(job.id) == "skipped"
    assert len(RAN) == before
    assert store.get_job(job.id).status == status and store.statuses(job.id) == []


def test_a_deleted_job_is_skipped(services):
    assert run_job("0" * 24) == "skipped"


def test_cancel_in_the_data_service_stops_a_cooperative_task(services):
    store = services.client
    job = store.add("simulate", {"duration": 20})
    # Cancel as the kernel does, shortly after the job started.
    threading.Timer(0.3, lambda: store.update_job(
        job.id, UpdateJob(status=JobStatus.CANCELLED))).start()
    assert run_job(job.id) == "cancelled"
    stored = store.get_job(job.id)
    assert stored.status == JobStatus.CANCELLED and stored.result is None
    assert 0 < stored.progress < 100  # it had started, and stopped on the way
    assert services.dead_letters.sent == []


def test_the_stop_command_interrupts_a_task_that_never_checks(services):
    store = services.client
    job = store.add("test-unit-block")
    cancel.install()

    def stop_when_running():
        while store.get_job(job.id).status != JobStatus.RUNNING:
            time.sleep(0.01)
        store.update_job(job.id, UpdateJob(status=JobStatus.CANCELLED))
        time.sleep(0.2)
        cancel.request(job.id)  # what the worker does on RQ's stop-job command

    threading.Thread(target=stop_when_running, daemon=True).start()
    assert run_job(job.id) == "cancelled"
    assert job.id not in RAN  # the sleep was cut short
    assert store.get_job(job.id).status == JobStatus.CANCELLED


def test_a_stop_for_a_job_not_running_here_does_nothing():
    cancel.install()
    cancel.request("f" * 24)  # no signal: that job is not active in this process
    with pytest.raises(JobCancelledError), cancel.active("f" * 24):
        pass  # a job stopped before its task started does not start


def test_retry_delay_doubles_and_is_capped():
    settings = worker_settings(retry_backoff_base=1.0, retry_backoff_max=5.0).worker
    assert [retry_delay(n, settings) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
