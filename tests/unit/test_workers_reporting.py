"""Progress and cancel checks are throttled; job timeouts follow the settings."""

from __future__ import annotations

from backend.jobs import JobStatus, UpdateJob
from backend.settings import WorkerSettings
from backend.workers import cancel
from backend.workers.enqueue import job_timeout
from backend.workers.reporting import JobReporter
from tests.integration.workers.fakes import FakeDataService


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingStore(FakeDataService):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get_job(self, job_id):
        self.gets += 1
        return super().get_job(job_id)


def test_progress_reports_are_throttled_but_100_always_goes():
    store, clock = CountingStore(), Clock()
    job = store.add("simulate", status=JobStatus.RUNNING)
    reporter = JobReporter(store, job.id, interval=0.5, clock=clock)
    for percent in (10, 20, 30):
        reporter.progress(percent)
        clock.now += 0.1
    clock.now += 0.5
    reporter.progress(40)
    reporter.progress(100)
    assert [f["progress"] for _, f in store.updates] == [10, 40, 100]
    assert store.get_job(job.id).progress == 100


def test_cancel_checks_ask_the_data_service_at_most_once_per_interval():
    store, clock = CountingStore(), Clock()
    job = store.add("simulate", status=JobStatus.RUNNING)
    reporter = JobReporter(store, job.id, interval=0.5, clock=clock)
    assert not reporter.is_cancelled()
    assert store.gets == 0  # the running PUT has just seen the status
    clock.now += 0.6
    store.update_job(job.id, UpdateJob(status=JobStatus.CANCELLED))
    assert reporter.is_cancelled()
    assert store.gets == 1
    assert reporter.is_cancelled()  # remembered: no second request
    assert store.gets == 1


def test_a_refused_progress_report_means_the_job_was_stopped():
    store, clock = CountingStore(), Clock()
    job = store.add("simulate", status=JobStatus.CANCELLED)
    reporter = JobReporter(store, job.id, interval=0.5, clock=clock)
    reporter.progress(10)  # 409: the job is cancelled
    assert reporter.is_cancelled()


def test_a_stop_command_is_seen_without_asking_the_data_service():
    store, clock = CountingStore(), Clock()
    job = store.add("simulate", status=JobStatus.RUNNING)
    reporter = JobReporter(store, job.id, interval=0.5, clock=clock)
    cancel.request(job.id)  # no signal: the job's task is not active in this process
    assert reporter.is_cancelled() and store.gets == 0


def test_job_timeout_is_derived_from_the_estimate():
    settings = WorkerSettings(job_timeout_default=300, job_timeout_factor=3.0, job_timeout_min=30)
    assert job_timeout(None, settings) == 300
    assert job_timeout(0, settings) == 30
    assert job_timeout(5, settings) == 30
    assert job_timeout(100, settings) == 300
    assert job_timeout(100.2, settings) == 301
