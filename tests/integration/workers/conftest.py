"""A Redis of our own (RQ keys are global), fresh for every test, and fake services on it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from backend.tasks import load_task_modules
from backend.workers.services import WorkerServices, set_services
from tests.integration.workers.fakes import fake_services, worker_settings
from tests.services import start_redis

load_task_modules()


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
def services(rq_redis: redis.Redis, rq_redis_url: str) -> Iterator[WorkerServices]:
    """Fake data service and dead-letter queue, real Redis; installed for run_job."""
    settings = worker_settings()
    settings.redis.redis_url = rq_redis_url
    made = fake_services(settings, rq_redis)
    set_services(made)
    yield made
    set_services(None)


@pytest.fixture
def keep_signal_handlers() -> Iterator[None]:
    """An in-process RQ worker installs SIGTERM/SIGINT handlers; put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT,
                                                     signal.SIGUSR1)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
