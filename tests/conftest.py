"""Fixtures that start real servers on free ports: Redis, nx-27017 (MongoDB wire), moto (SQS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import ManagedProcess, start_mongo, start_moto, start_redis


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def redis_url(log_dir: Path) -> Iterator[str]:
    proc, url = start_redis(log_dir)
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def mongo_url(log_dir: Path) -> Iterator[str]:
    """A MongoDB wire-protocol server (nx-27017) with an in-memory database."""
    proc, url = start_mongo(log_dir)
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def sqs_url(log_dir: Path) -> Iterator[str]:
    """moto's server mode: a real SQS HTTP API."""
    proc, url = start_moto(log_dir)
    yield url
    proc.stop()


@pytest.fixture
def processes() -> Iterator[list[ManagedProcess]]:
    """Processes a test starts; each is stopped by PID when the test ends."""
    started: list[ManagedProcess] = []
    yield started
    for proc in reversed(started):
        proc.stop()
