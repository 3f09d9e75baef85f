"""A Redis of our own (RQ keys are global), fresh for every test, and the workers'
connections pointed at it. Workers talk to nothing else: what they say about a job is
read back from the report stream."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from backend.reports import REPORT_FIELD, REPORT_STREAM, Report, decode_report
from backend.settings import Settings, WorkerSettings
from backend.tasks import load_task_modules
from backend.workers.connections import WorkerConnections, set_connections
from tests.services import start_redis

load_task_modules()


def worker_settings(redis_url: str, **overrides: Any) -> Settings:
    """Settings with fast retries; ``overrides`` are WorkerSettings fields."""
    settings = Settings()
    values: dict[str, Any] = dict(max_attempts=3, retry_backoff_base=0.0, retry_backoff_max=0.0,
                                  report_interval=0.0, worker_heartbeat=0.2,
                                  executors="standard,priority")
    values.update(overrides)
    settings.worker = WorkerSettings(**values)
    settings.redis.redis_url = redis_url
    return settings


def reports(connection: redis.Redis, job_id: str | None = None) -> list[Report]:
    """Every report in the stream (of one job), oldest first."""
    found = [decode_report(fields[REPORT_FIELD])
             for _, fields in connection.xrange(REPORT_STREAM, "-", "+")]
    return [r for r in found if job_id is None or r.job_id == job_id]


def statuses(connection: redis.Redis, job_id: str) -> list[tuple[str | None, int]]:
    """(status, attempt) of the job's status reports, in order (progress left out)."""
    return [(str(r.status), r.attempt) for r in reports(connection, job_id)
            if r.status is not None]


@pytest.fixture(scope="module")
def rq_redis_url(log_dir: Path) -> Iterator[str]:
    proc, url = start_redis(log_dir)
    yield url
    proc.stop()


@pytest.fixture
def rq_redis(rq_redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(rq_redis_url)
    connection.flushdb()
    yield connection
    connection.close()


@pytest.fixture
def connections(rq_redis: redis.Redis, rq_redis_url: str) -> Iterator[WorkerConnections]:
    """The worker connections of this process, on the test's Redis (used by run_job)."""
    made = WorkerConnections(worker_settings(rq_redis_url), connection=rq_redis)
    set_connections(made)
    yield made
    made.__dict__.pop("redis", None)  # the test owns rq_redis
    made.close()
    set_connections(None)


@pytest.fixture
def keep_signal_handlers() -> Iterator[None]:
    """An in-process RQ worker installs SIGTERM/SIGINT handlers; put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT,
                                                     signal.SIGUSR1)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
