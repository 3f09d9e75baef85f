"""Our RQ worker class on a real Redis, in this process (burst mode).

Workers ask the data service nothing: what they say about a job is read back from the
report stream, and whether to run a job from its markers in Redis.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from bson import ObjectId
from rq import Queue
from rq.command import send_stop_job_command
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.suspension import resume, suspend

from backend import markers
from backend.jobs import JobStatus, QueueMessage
from backend.rqjobs import enqueue, fetch
from backend.tasks import task
from backend.workers import reaper
from backend.workers.connections import get_connections
from backend.workers.worker import SUSPENSION_CHECK_EVERY, TaskWorker
from tests.integration.workers.conftest import reports, statuses

pytestmark = pytest.mark.usefixtures("keep_signal_handlers")
FINISHED: list[str] = []
STARTED: list[str] = []


@task("test-worker-block")
def _block(ctx):
    STARTED.append(ctx.job_id)
    time.sleep(30)  # not cooperative: only the stop command can end it early
    FINISHED.append(ctx.job_id)


@task("test-worker-suspend")
def _suspend_workers(ctx):
    suspend(get_connections().redis)  # as `rq suspend` does
    time.sleep(SUSPENSION_CHECK_EVERY + 0.1)  # the worker's next look at it is due


@task("test-worker-huge")
def _huge(ctx):
    return {"blob": "x" * 300_000}


@task("test-worker-set")
def _a_set(ctx):
    return {1, 2}


@task("test-worker-object")
def _not_json(ctx):
    return {"when": object()}


def _submit(connections, name, params=None, **fields) -> str:
    job_id = str(ObjectId())
    message = QueueMessage(job_id=job_id, name=name, params=params, **fields)
    assert enqueue(connections.redis, message, connections.settings.worker)
    return job_id


def _work(connections, queues=("standard",)):
    worker = TaskWorker(list(queues), connection=connections.redis,
                        heartbeat=connections.settings.worker.worker_heartbeat)
    worker.work(burst=True)
    return worker


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_short_jobs_report_their_result_in_one_report(connections):
    redis = connections.redis
    ids = [_submit(connections, "checksum", {"text": f"text {n}"}) for n in range(5)]
    worker = _work(connections)
    for job_id in ids:
        [end] = reports(redis, job_id)  # no `running` of its own: the end says when it began
        assert (end.status, end.attempt) == (JobStatus.SUCCEEDED, 1)
        assert end.result["algorithm"] == "sha256" and end.worker_id == worker.name
        assert end.started_at is not None and end.started_at <= end.at
        assert redis.exists(markers.done_key(job_id))  # a late duplicate will not run it
        assert fetch(redis, job_id).get_status() == "finished"  # RQ's end, same transaction


def test_under_load_each_next_job_is_taken_with_the_end_of_the_last(connections):
    redis = connections.redis
    ids = [_submit(connections, "echo", {"n": n}) for n in range(6)]
    redis.config_resetstat()
    _work(connections)
    ends = [reports(redis, job_id)[-1] for job_id in ids]
    assert [(end.status, end.result) for end in ends] == [
        (JobStatus.SUCCEEDED, {"n": n}) for n in range(6)]
    assert [end.started_at for end in ends] == sorted(end.started_at for end in ends)
    # RQ's own pop and fetch ran for the first job only (and the last, empty, look);
    # the other five came with the end of the job before, in its transaction (one EVAL
    # each, and no other script runs here).
    calls = {name: stats["calls"] for name, stats in redis.info("commandstats").items()}
    assert calls.get("cmdstat_eval", 0) == len(ids)


def test_a_worker_that_stops_puts_the_job_it_took_back_at_the_head_of_its_queue(
        connections):
    redis = connections.redis
    first, taken, last = (_submit(connections, "echo", {"n": n}) for n in range(3))
    worker = TaskWorker(["standard"], connection=redis,
                        heartbeat=connections.settings.worker.worker_heartbeat)
    worker.work(burst=True, max_jobs=1)  # stops after one job, with the next one taken
    assert statuses(redis, first) == [("succeeded", 1)]
    assert statuses(redis, taken) == []  # it never started here
    queue = Queue("standard", connection=redis, serializer=JSONSerializer)
    assert queue.get_job_ids() == [taken, last]
    assert fetch(redis, taken).get_status() == "queued"
    _work(connections)  # the next worker runs it, once
    assert statuses(redis, taken) == [("succeeded", 1)]
    assert statuses(redis, last) == [("succeeded", 1)]


def test_a_suspended_worker_puts_the_job_it_took_back_and_runs_it_after_resume(connections):
    redis = connections.redis
    first = _submit(connections, "test-worker-suspend")
    taken, last = (_submit(connections, "echo", {"n": n}) for n in range(2))
    queue = Queue("standard", connection=redis, serializer=JSONSerializer)
    seen_waiting: list[list[str]] = []
    main = threading.main_thread().ident

    def watch_then_stop():
        # While the worker waits, suspended (not in burst mode), the job it took with
        # the end of the first one is back in the queue, for any worker resumed later.
        try:
            _wait_for(lambda: statuses(redis, first)[-1:] == [("succeeded", 1)]
                      and queue.get_job_ids() == [taken, last], timeout=10)
            seen_waiting.append(queue.get_job_ids())
        finally:
            signal.pthread_kill(main, signal.SIGTERM)

    threading.Thread(target=watch_then_stop, daemon=True).start()
    TaskWorker(["standard"], connection=redis,
               heartbeat=connections.settings.worker.worker_heartbeat).work()
    assert seen_waiting == [[taken, last]]
    assert statuses(redis, taken) == [] and statuses(redis, last) == []
    resume(redis)
    _work(connections)
    assert statuses(redis, taken) == [("succeeded", 1)]
    assert statuses(redis, last) == [("succeeded", 1)]


def test_a_job_that_runs_a_while_reports_running_first(connections):
    job_id = _submit(connections, "simulate", {"duration": 1.2}, estimated_time=2)
    _work(connections)
    sent = reports(connections.redis, job_id)
    assert (sent[0].status, sent[0].attempt) == (JobStatus.RUNNING, 1)
    assert sent[-1].status is JobStatus.SUCCEEDED


def test_a_retry_goes_back_to_the_queue_and_runs_again_as_the_next_attempt(connections):
    job_id = _submit(connections, "fail", {"succeed_on_attempt": 3})
    _work(connections)  # backoff 0 in these settings: RQ requeues at once, burst runs it again
    assert statuses(connections.redis, job_id) == [
        ("retrying", 1), ("retrying", 2), ("succeeded", 3)]
    assert "attempt 1 of 3 failed" in reports(connections.redis, job_id)[0].error


def test_a_job_that_fails_for_good_reports_its_dead_letter_and_shows_failed_in_rq(connections):
    job_id = _submit(connections, "fail", {"permanent": True, "message": "bad input"})
    _work(connections)
    end = reports(connections.redis, job_id)[-1]
    assert (end.status, end.attempt) == (JobStatus.FAILED, 1)
    assert "bad input" in end.error and "attempt 1 of 3" in end.error
    assert end.dead_letter is not None and end.dead_letter.job_id == job_id
    rq_job = fetch(connections.redis, job_id)
    assert rq_job.get_status() == "failed"  # rq-dashboard lists it with its traceback
    assert "bad input" in rq_job.latest_result().exc_string


@pytest.mark.parametrize(("marker", "ends_as", "error"), [
    (markers.CANCELLED, "cancelled", None),
    (markers.void_reason("the submit failed"), "failed", "the submit failed"),
])
def test_a_stopped_job_never_runs_and_its_end_is_reported(connections, marker, ends_as, error):
    job_id = _submit(connections, "test-worker-block")
    connections.redis.set(markers.stop_key(job_id), marker)
    _work(connections)
    assert job_id not in STARTED
    assert statuses(connections.redis, job_id)[-1] == (ends_as, 1)
    assert reports(connections.redis, job_id)[-1].error == error
    assert fetch(connections.redis, job_id).return_value() == "skipped"


def test_a_job_that_finished_already_is_not_run_again(connections):
    job_id = _submit(connections, "test-worker-block")
    connections.redis.set(markers.done_key(job_id), b"1")
    _work(connections)
    assert job_id not in STARTED
    assert statuses(connections.redis, job_id) == []  # it has finished: nothing to say


def test_rqs_stop_job_command_cancels_a_running_task(connections):
    job_id = _submit(connections, "test-worker-block")

    def cancel_like_the_kernel():
        _wait_for(lambda: job_id in STARTED)
        connections.redis.set(markers.stop_key(job_id), markers.CANCELLED)
        send_stop_job_command(connections.redis, job_id, serializer=JSONSerializer)

    threading.Thread(target=cancel_like_the_kernel, daemon=True).start()
    _work(connections)
    assert job_id not in FINISHED  # the 30 s sleep was interrupted
    assert statuses(connections.redis, job_id)[-1] == ("cancelled", 1)


def test_a_cooperative_task_notices_the_stop_marker_by_itself(connections):
    job_id = _submit(connections, "simulate", {"duration": 20}, estimated_time=20)
    threading.Timer(1.0, lambda: connections.redis.set(markers.stop_key(job_id),
                                                       markers.CANCELLED)).start()
    started = time.monotonic()
    _work(connections)
    assert time.monotonic() - started < 10
    assert statuses(connections.redis, job_id) == [("running", 1), ("cancelled", 1)]
    progress = [r.progress for r in reports(connections.redis, job_id) if r.status is None]
    assert progress and all(0 < p < 100 for p in progress)


@pytest.mark.parametrize(("name", "why"), [
    ("test-worker-huge", "MAX_RESULT_BYTES"),
    ("test-worker-set", "cannot be stored"),
    ("test-worker-object", "not JSON"),
])
def test_a_result_that_cannot_be_stored_fails_the_job_for_good(connections, name, why):
    job_id = _submit(connections, name)
    _work(connections)
    end = reports(connections.redis, job_id)[-1]
    assert (end.status, end.attempt) == (JobStatus.FAILED, 1) and why in end.error


def test_a_live_workers_long_job_keeps_its_heartbeat_and_is_not_reaped(connections):
    # heartbeat 0.2 s: the started-registry entry would expire after 0.8 s without beats.
    job_id = _submit(connections, "simulate", {"duration": 3}, estimated_time=3)
    registry = StartedJobRegistry("standard", connection=connections.redis)
    reaped: list[str] = []
    done = threading.Event()

    def sweep_while_running():
        _wait_for(lambda: job_id in registry.get_job_ids(cleanup=False))
        while not done.is_set():
            reaped.extend(reaper.sweep(connections.redis, connections.writer,
                                       connections.settings.worker, ["standard"]))
            time.sleep(0.1)

    sweeper = threading.Thread(target=sweep_while_running, daemon=True)
    sweeper.start()
    _work(connections)
    done.set()
    sweeper.join(10)
    assert reaped == []
    assert statuses(connections.redis, job_id)[-1] == ("succeeded", 1)
    assert registry.get_job_ids(cleanup=False) == []


def test_a_cold_shutdown_mid_job_puts_the_job_back_for_a_retry(connections):
    job_id = _submit(connections, "test-worker-block")
    main = threading.main_thread().ident

    def press_ctrl_c_twice():
        _wait_for(lambda: job_id in STARTED)
        signal.pthread_kill(main, signal.SIGTERM)  # warm: finish the job, then stop
        time.sleep(1.2)  # RQ ignores a second signal within a second (duplicate delivery)
        signal.pthread_kill(main, signal.SIGTERM)  # cold: stop now

    threading.Thread(target=press_ctrl_c_twice, daemon=True).start()
    _work(connections)
    assert job_id not in FINISHED
    end = reports(connections.redis, job_id)[-1]
    assert (end.status, end.attempt) == (JobStatus.RETRYING, 1)
    assert "shut down mid-job" in end.error
    assert job_id in ScheduledJobRegistry("standard", connection=connections.redis)
    assert fetch(connections.redis, job_id).meta["attempt"] == 2


def _proof(tmp_path: Path) -> tuple[Path, str]:
    target = tmp_path / f"ran-{uuid.uuid4().hex}"
    return target, f"touch {target}"


def test_an_rq_job_naming_any_other_function_is_refused_and_nothing_runs(connections,
                                                                          tmp_path):
    target, command = _proof(tmp_path)
    queue = Queue("standard", connection=connections.redis, serializer=JSONSerializer)
    job = queue.enqueue_call("os.system", args=(command,))
    _work(connections)
    assert not target.exists()
    rq_job = fetch(connections.redis, job.id)
    assert rq_job.get_status() == "failed"
    assert "refused" in rq_job.latest_result().exc_string


def test_a_pickled_rq_job_is_never_unpickled(connections, tmp_path):
    target, command = _proof(tmp_path)

    class Payload:
        def __reduce__(self):
            return (os.system, (command,))

    # What RQ's default (pickle) serializer would write, naming the real runner even.
    queue = Queue("standard", connection=connections.redis)
    job = queue.enqueue_call("backend.workers.runner.run_job", args=(Payload(),))
    assert not target.exists()  # enqueueing pickles; nothing ran yet
    _work(connections)
    assert not target.exists()
    assert fetch(connections.redis, job.id).get_status() == "failed"
