"""The job function, its hooks and the report writer, on fakeredis (fast).

``run_job`` is called here outside RQ (no RQ job: the attempt is the message's). The
same paths run in a real RQ worker on a real Redis in tests/integration/workers.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import fakeredis
import pytest
import redis
from rq import Retry
from rq.timeouts import JobTimeoutException

from backend import markers
from backend.errors import JobCancelledError, PermanentError
from backend.jobs import JobStatus, QueueMessage
from backend.reports import REPORT_FIELD, REPORT_STREAM, Report, decode_report
from backend.rqjobs import job_timeout
from backend.settings import Settings, WorkerSettings
from backend.tasks import load_task_modules, task
from backend.workers.connections import WorkerConnections, set_connections
from backend.workers.middleware import cancellation, retry_delay
from backend.workers.middleware.base import JobRun
from backend.workers.middleware.reporting import LiveReports
from backend.workers.report_writer import AttemptReports, ReportWriter
from backend.workers.runner import run_job

load_task_modules()
RAN: list[str] = []
JOB = "0123456789abcdef01234567"


@task("test-unit-count")
def _count(ctx):
    RAN.append(ctx.job_id)
    ctx.progress(50)
    return {"ran": len(RAN)}


@task("test-unit-timeout")
def _times_out(ctx):
    raise JobTimeoutException("Task exceeded maximum timeout value (2 seconds)")


@task("test-unit-block")
def _block(ctx):
    time.sleep(30)  # not cooperative: only the stop signal can end it early
    RAN.append(ctx.job_id)
    return "slept"


def settings(**worker: object) -> Settings:
    made = Settings()
    made.worker = WorkerSettings(**{"max_attempts": 3, "retry_backoff_base": 0.5,
                                    "retry_backoff_max": 1.5, "report_interval": 0.0,
                                    **worker})
    return made


@pytest.fixture
def fake() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def connections(fake):
    made = WorkerConnections(settings(), connection=fake)
    made.__dict__["writer"] = ReportWriter(fake, done_ttl=3600)
    set_connections(made)
    yield made
    set_connections(None)


def sent(fake) -> list[Report]:
    return [decode_report(fields[REPORT_FIELD]) for _, fields in fake.xrange(REPORT_STREAM)]


def run(name: str, params: dict | None = None, attempt: int = 1, job_id: str = JOB) -> object:
    message = QueueMessage(job_id=job_id, name=name, params=params, attempt=attempt)
    return run_job(job_id, _json(message))


def _json(message: QueueMessage) -> str:
    import msgspec

    return msgspec.json.encode(message).decode()


def test_a_job_runs_and_reports_running_progress_and_its_result(connections, fake):
    assert run("test-unit-count") == "succeeded"
    reports = sent(fake)
    assert [(r.status, r.progress) for r in reports] == [
        (JobStatus.RUNNING, 0.0), (None, 50.0), (JobStatus.SUCCEEDED, None)]
    assert reports[-1].result == {"ran": len(RAN)}
    assert fake.exists(markers.done_key(JOB))


def test_a_failing_job_asks_for_a_retry_with_backoff_until_the_last_attempt(connections, fake):
    outcome = run("fail", {"message": "flaky"}, attempt=1)
    assert isinstance(outcome, Retry)
    assert outcome.intervals == [1.5]  # 0.5 s backoff, plus a second for RQ's whole seconds
    assert sent(fake)[-1].status is JobStatus.RETRYING
    assert not fake.exists(markers.done_key(JOB))
    with pytest.raises(RuntimeError, match="flaky"):
        run("fail", {"message": "flaky"}, attempt=3)
    end = sent(fake)[-1]
    assert (end.status, end.attempt) == (JobStatus.FAILED, 3)
    assert end.dead_letter is not None and end.dead_letter.attempt == 3


@pytest.mark.parametrize(("name", "params", "error"), [
    ("fail", {"permanent": True}, "PermanentError"),
    ("test-unit-timeout", None, "timeout"),
    ("wordcount", {"text": 1}, "params.text"),
])
def test_permanent_errors_and_timeouts_fail_at_once(connections, fake, name, params, error):
    with pytest.raises(PermanentError):
        run(name, params)
    end = sent(fake)[-1]
    assert end.status is JobStatus.FAILED and error in end.error


def test_a_stop_marker_seen_while_running_stops_a_cooperative_task(connections, fake):
    threading.Timer(0.3, lambda: fake.set(markers.stop_key(JOB), markers.CANCELLED)).start()
    assert run("simulate", {"duration": 10}) == "cancelled"
    reports = sent(fake)
    assert reports[-1].status is JobStatus.CANCELLED
    assert any(r.status is None and 0 < r.progress < 100 for r in reports)


def test_the_stop_command_interrupts_a_task_that_never_checks(connections, fake):
    cancellation.install()
    job_id = "b" * 24

    def stop_when_running():
        while not fake.xlen(REPORT_STREAM):
            time.sleep(0.01)
        time.sleep(0.2)
        cancellation.request(job_id)  # what the worker does on RQ's stop-job command

    threading.Thread(target=stop_when_running, daemon=True).start()
    assert run("test-unit-block", job_id=job_id) == "cancelled"
    assert job_id not in RAN  # the sleep was cut short


def test_a_stop_for_a_job_not_running_here_does_nothing():
    cancellation.install()
    cancellation.request("f" * 24)  # no signal: that job is not active in this process
    with pytest.raises(JobCancelledError), cancellation.active("f" * 24):
        pass  # a job stopped before its task started does not start


def test_retry_delay_doubles_and_is_capped():
    worker = settings(retry_backoff_base=1.0, retry_backoff_max=5.0).worker
    assert [retry_delay(n, worker) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_job_timeout_is_derived_from_the_estimate_and_capped():
    worker = WorkerSettings(job_timeout_min=30, job_timeout_factor=3, job_timeout_default=300,
                            max_job_timeout=3600)
    assert job_timeout(None, worker) == 300
    assert job_timeout(1, worker) == 30
    assert job_timeout(100, worker) == 300
    assert job_timeout(7 * 24 * 3600, worker) == 3600


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def live(fake, interval: float = 1.0) -> tuple[LiveReports, Clock]:
    clock = Clock()
    run = JobRun(message=QueueMessage(job_id=JOB, name="echo"), attempt=1, worker_id="w",
                 reports=AttemptReports(ReportWriter(fake, done_ttl=60)),
                 settings=settings().worker)
    return LiveReports(run, interval, clock=clock), clock


def test_progress_reports_are_throttled_but_100_always_goes(fake):
    reports, clock = live(fake)
    for percent in (10, 20, 30):
        reports.progress(percent)
    clock.now = 1.5
    reports.progress(40)
    reports.progress(100)
    assert [r.progress for r in sent(fake)] == [10, 40, 100]


def test_the_stop_marker_is_read_at_most_once_per_interval(fake, monkeypatch):
    reports, clock = live(fake)
    reads: list[str] = []
    real_get = fake.get
    monkeypatch.setattr(fake, "get", lambda key: reads.append(key) or real_get(key))
    assert not reports.is_cancelled() and not reports.is_cancelled()
    assert reads == []  # the begin round trip has just looked
    fake.set(markers.stop_key(JOB), markers.CANCELLED)
    clock.now = 1.0
    assert reports.is_cancelled()
    assert len(reads) == 1


def test_an_end_report_is_sent_again_until_redis_takes_it(fake, monkeypatch):
    sleeps: list[float] = []
    writer = ReportWriter(fake, done_ttl=60, sleep=sleeps.append)
    failures = iter([True, True, False])
    real_pipeline = fake.pipeline

    class Flaky:
        def __init__(self, *args, **kwargs):
            self.pipe = real_pipeline(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.pipe.__exit__(*exc)

        def __getattr__(self, name):
            return getattr(self.pipe, name)

        def execute(self):
            if next(failures):
                raise redis.ConnectionError("Redis restarting")
            return self.pipe.execute()

    monkeypatch.setattr(fake, "pipeline", Flaky)
    writer.end(Report(job_id=JOB, attempt=1, at=datetime.now(UTC), status=JobStatus.SUCCEEDED,
                      result={"ok": True}))
    assert sleeps == [0.05, 0.1]
    assert [r.status for r in sent(fake)] == [JobStatus.SUCCEEDED]
