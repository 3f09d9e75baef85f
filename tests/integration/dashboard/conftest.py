"""rq-dashboard as the real process (``python -m backend.dashboard``) on a Redis of its
own, given nothing but REDIS_URL and its user name and password."""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from backend.local.embedded import free_port
from tests.services import ManagedProcess, start_redis

USER, PASSWORD = "operator", "dashboard-test-password"
# Secrets other processes hold, explicitly empty: the dashboard must not need them.
NOT_GIVEN = ("AUTH_SECRET", "DATA_SERVICE_TOKEN", "WEBHOOK_SECRET", "MONGODB_URL",
             "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "METRICS_TOKEN")


@dataclass
class Dashboard:
    url: str
    proc: ManagedProcess
    env: dict[str, str]

    def client(self, **headers: str) -> httpx.Client:
        """Signed in, and its requests coming from the dashboard's own pages."""
        return httpx.Client(base_url=self.url, auth=(USER, PASSWORD), timeout=10,
                            headers={"Origin": self.url, **headers})


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def dash_redis_url(log_dir: Path) -> Iterator[str]:
    proc, url = start_redis(log_dir)
    yield url
    proc.stop()


@pytest.fixture
def rq_redis(dash_redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(dash_redis_url)
    connection.flushdb()
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def dashboard(dash_redis_url: str, log_dir: Path) -> Iterator[Dashboard]:
    yield from start_dashboard(dash_redis_url, log_dir)


def start_dashboard(redis_url: str, log_dir: Path, **settings: str) -> Iterator[Dashboard]:
    """The dashboard process on ``redis_url`` (with ``settings`` more), until closed."""
    port = free_port()
    env = {"REDIS_URL": redis_url, "DASHBOARD_USERNAME": USER,
           "DASHBOARD_PASSWORD": PASSWORD, **dict.fromkeys(NOT_GIVEN, ""), **settings}
    proc = ManagedProcess(f"dashboard-{port}", [sys.executable, "-m", "backend.dashboard",
                                                 "--port", str(port)], log_dir, env=env).start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_until(lambda: httpx.get(url + "/", auth=(USER, PASSWORD),
                                          timeout=2).status_code == 200, 60)
        yield Dashboard(url=url, proc=proc, env=env)
    finally:
        proc.stop()
