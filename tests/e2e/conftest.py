"""The whole system as real processes: Redis, nx-27017, (moto), data service, kernel,
dispatcher and workers, each started the way every deployment starts it.

``system`` is module-scoped and parametrizable over the queue backend:
``pytest.mark.parametrize("system", ["redis", "sqs"], indirect=True)``; without a
parameter it runs on the Redis Stream queue.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from rq import Worker as RQWorker

from backend.jobs import QueueMessage
from backend.local.embedded import free_port
from backend.queues import StandardQueue, make_queue
from backend.settings import QueueSettings, RedisSettings, Settings
from tests.services import (
    ROOT,
    SERVICE_HEADERS,
    TEST_SECRETS,
    ManagedProcess,
    create_user,
    python_module,
    sign_in,
    start_mongo,
    start_moto,
    start_redis,
)

FINAL = {"succeeded", "failed", "cancelled"}
E2E_USER = "e2e"
WORKERS = 2

# Short timings so failures, retries, redeliveries and timeouts happen within seconds.
TEST_SETTINGS = {
    "WEBHOOK_SECRET": "e2e-webhook-secret-of-kernel-and-dispatcher",
    "QUEUE_VISIBILITY_TIMEOUT": "3",
    "QUEUE_WAIT_SECONDS": "1",
    "QUEUE_MAX_RECEIVES": "5",
    "MAX_ATTEMPTS": "3",
    "RETRY_BACKOFF_BASE": "0.5",
    "RETRY_BACKOFF_MAX": "2",
    "JOB_TIMEOUT_MIN": "2",
    "JOB_TIMEOUT_FACTOR": "2",
    "JOB_TIMEOUT_DEFAULT": "60",
    "SHUTDOWN_GRACE": "8",
    "WORKER_HEARTBEAT": "0.5",
    "REPORT_INTERVAL": "0.2",
    "SSE_POLL_INTERVAL": "0.2",
    "EXECUTORS": "standard,priority",
    "WORKER_COUNT": str(WORKERS),
    "DISPATCHER_EXIT_AFTER_RECEIVE": "false",
    "LOG_LEVEL": "INFO",
    # Metrics endpoints bind fixed ports by default; the tests of metrics pick free ones.
    "METRICS_PORT": "0",
    "DISPATCHER_METRICS_PORT": "0",
}


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition",
              interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; generous deadlines, no fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class System:
    """The running system; tests may stop, kill and replace its processes."""

    backend: str
    api_url: str
    store_url: str
    redis_url: str
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=15.0))
    token: str = ""

    def __getattr__(self, name: str) -> ManagedProcess:
        try:
            return self.__dict__["processes"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    # processes --------------------------------------------------------------------------
    def start(self, role: str, module: str, *args: str, env: dict[str, str] | None = None,
              ) -> ManagedProcess:
        """Start (or replace) the process ``role``: ``python -m module args``."""
        generation = sum(1 for p in self.log_dir.glob(f"{self.backend}-{role}*.log"))
        name = f"{self.backend}-{role}" + (f"-{generation}" if generation else "")
        proc = python_module(name, module, self.log_dir, {**self.env, **(env or {})},
                             *args).start()
        self.processes[role] = proc
        return proc

    def start_dispatcher(self, **env: str) -> ManagedProcess:
        return self.start("dispatcher", "backend.dispatcher", env=env)

    def start_workers(self, count: int = WORKERS, **env: str) -> ManagedProcess:
        """(Re)start the worker executor and wait until ``count`` workers are idle."""
        proc = self.start("workers", "backend.workers", "--workers", str(count), env=env)
        proc.wait_until(lambda: self.idle_workers() >= count, 60)
        return proc

    def idle_workers(self) -> int:
        with self.redis as connection:
            return sum(1 for w in RQWorker.all(connection=connection)
                       if w.get_state() in ("idle", "started") and w.death_date is None)

    def start_store(self) -> ManagedProcess:
        """(Re)start the data service on its port."""
        port = self.store_url.rsplit(":", 1)[1]
        proc = self.start("store", "backend.store", "--port", port)
        return proc.wait_http(f"{self.store_url}/readyz", 60)

    def start_api(self, **env: str) -> ManagedProcess:
        """(Re)start the kernel on its port."""
        port = self.api_url.rsplit(":", 1)[1]
        proc = self.start("api", "backend.api", "--port", port, env=env)
        return proc.wait_http(f"{self.api_url}/readyz", 60)

    def restart_redis(self, *, keep_data: bool = True) -> None:
        """Stop Redis (SIGTERM: it writes its append-only file) and start it again on the
        same port, with its data or (``keep_data=False``) empty, as a Redis without
        persistence comes back."""
        old = self.processes["redis-server"]
        old.stop()
        port = int(self.redis_url.rsplit(":", 1)[1].split("/")[0])
        data_dir = self.log_dir / f"redis-{port}-data"
        if not keep_data:
            data_dir = self.log_dir / f"redis-{port}-empty-{uuid.uuid4().hex[:6]}"
        password = urlsplit(self.redis_url).password
        self.processes["redis-server"], _ = start_redis(self.log_dir, port=port,
                                                        data_dir=data_dir, password=password)

    def worker_pids(self) -> list[int]:
        """PIDs of the RQ worker processes alive now."""
        with self.redis as connection:
            return [w.pid for w in RQWorker.all(connection=connection)
                    if w.pid and w.death_date is None]

    def stop_all(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()
        self.http.close()

    # the kernel and the data service, over HTTP ---------------------------------------
    def submit(self, name: str, params: dict[str, Any] | None = None, *,
               estimated_time: float = 1, user_id: str = "e2e",
               executor: str | None = None) -> str:
        query = {"executor": executor} if executor else {}
        answer = self.http.post(f"{self.api_url}/api/v1/job_executor/async", params=query,
                                json={"job_name": name, "user_id": user_id,
                                      "estimated_time": estimated_time, "params": params or {}})
        assert answer.status_code == 200, answer.text
        return answer.json()["job_id"]

    def job(self, job_id: str) -> dict[str, Any]:
        answer = self.http.get(f"{self.api_url}/api/v1/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def cancel(self, job_id: str) -> httpx.Response:
        return self.http.post(f"{self.api_url}/api/v1/jobs/{job_id}/cancel")

    def wait_status(self, job_id: str, statuses: set[str] | str, timeout: float = 60.0,
                    ) -> dict[str, Any]:
        wanted = {statuses} if isinstance(statuses, str) else statuses

        def reached() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] in wanted else None

        return wait_for(reached, timeout, f"job {job_id} to be {'/'.join(sorted(wanted))}")

    def wait_final(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        return self.wait_status(job_id, FINAL, timeout)

    def create_job(self, name: str, params: dict[str, Any] | None = None) -> str:
        """A job recorded in the data service only (``created``), as the kernel's first step."""
        answer = self.http.post(f"{self.store_url}/job/", headers=SERVICE_HEADERS,
                                json={"name": name, "user_id": "e2e", "params": params or {},
                                      "estimated_time": 1})
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]

    # the STANDARD queue, directly -----------------------------------------------------
    def settings(self) -> Settings:
        """The processes' settings, for talking to their queue from the test."""
        settings = Settings()
        env = self.env
        settings.queue = QueueSettings(
            queue_backend=env["QUEUE_BACKEND"], standard_queue_name=env["STANDARD_QUEUE_NAME"],
            queue_visibility_timeout=int(env["QUEUE_VISIBILITY_TIMEOUT"]), queue_wait_seconds=0,
            sqs_endpoint_url=env.get("SQS_ENDPOINT_URL", ""), aws_access_key_id="test",
            aws_secret_access_key="test", aws_default_region="us-east-1")
        settings.redis = RedisSettings(redis_url=self.redis_url)
        return settings

    def queue_call(self, action: Callable[[StandardQueue], Any]) -> Any:
        """Run ``await action(queue)`` on a fresh client of the system's STANDARD queue."""
        async def run() -> Any:
            queue = make_queue(self.settings())
            try:
                return await action(queue)
            finally:
                await queue.close()

        return asyncio.run(run())

    def send(self, message: QueueMessage) -> None:
        self.queue_call(lambda queue: queue.send(message))

    def dead_letter_ids(self) -> set[str]:
        messages = self.queue_call(lambda queue: queue.dead_letters(limit=100))
        return {message.job_id for message in messages}


def _start_system(backend: str, log_dir: Path, extra: dict[str, str] | None = None,
                  workers: int = WORKERS) -> System:
    servers: dict[str, ManagedProcess] = {}
    try:
        servers["redis-server"], redis_url = start_redis(log_dir)
        servers["mongo-server"], mongo_url = start_mongo(log_dir)
        env = {
            **TEST_SECRETS,
            **TEST_SETTINGS,
            "REDIS_URL": redis_url,
            "MONGODB_URL": mongo_url,
            "DATABASE_NAME": f"e2e_{backend}",
            "QUEUE_BACKEND": backend,
            "STANDARD_QUEUE_NAME": f"e2e-{backend}-{uuid.uuid4().hex[:8]}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "SQS_ENDPOINT_URL": "",
            "FRONTEND_DIST": str(ROOT / "frontend" / "dist" / "frontend" / "browser"),
            **(extra or {}),
        }
        if backend == "sqs":
            servers["moto"], env["SQS_ENDPOINT_URL"] = start_moto(log_dir)
        store_port, api_port = free_port(), free_port()
        store_url = f"http://127.0.0.1:{store_port}"
        env["DATA_SERVICE_URL"] = store_url
        env["STORE_PORT"], env["API_PORT"] = str(store_port), str(api_port)
        system = System(backend=backend, api_url=f"http://127.0.0.1:{api_port}",
                        store_url=store_url, redis_url=redis_url, env=env, log_dir=log_dir,
                        processes=servers)
    except BaseException:
        for proc in servers.values():
            proc.stop()
        raise
    try:
        system.start("store", "backend.store", "--port", str(store_port)).wait_http(
            f"{store_url}/readyz", 60)
        system.start("api", "backend.api", "--port", str(api_port)).wait_http(
            f"{system.api_url}/readyz", 60)
        # Tests act as an admin (they submit for several users, and are exempt from the
        # limits per user); who may do what is tested in tests/integration/api/test_auth.py.
        create_user(store_url, E2E_USER, role="admin")
        system.token = sign_in(system.api_url, E2E_USER)
        system.http.headers["Authorization"] = f"Bearer {system.token}"
        system.start_dispatcher()
        system.start_workers(workers)
    except BaseException:
        system.stop_all()
        raise
    return system


@pytest.fixture(scope="module")
def system(request: pytest.FixtureRequest, log_dir: Path) -> Iterator[System]:
    """The running system on queue backend ``request.param`` ("redis" by default)."""
    backend = getattr(request, "param", "redis")
    running = _start_system(backend, log_dir)
    yield running
    running.stop_all()
