"""Faults an operator meets, each through real processes (Redis Stream queue):

* Redis comes back without its data, or an RQ queue is emptied from rq-dashboard: the
  reconciler sends the jobs again and they finish;
* the data service is down while a job runs: the job still succeeds (reports wait in
  Redis, they never block the task or use up its timeout);
* the data service hangs on a submit: the 503 names a job that never runs;
* too much work waits: a submit is answered 429 with Retry-After, at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import ClientSession, web
from rq import Queue

from backend import markers
from backend.local.embedded import free_port
from tests.e2e.conftest import System, _start_system, wait_for
from tests.e2e.tasks import runs

pytestmark = pytest.mark.e2e

FAULT_SETTINGS = {
    "TASK_MODULES": "tests.e2e.tasks",
    "RECONCILE_INTERVAL": "1",
    "RECONCILE_AFTER": "2",
    "DATA_SERVICE_DEADLINE": "1",
    "DATA_SERVICE_TIMEOUT": "1",
}


@pytest.fixture(scope="module")
def system(log_dir: Path) -> Iterator[System]:
    running = _start_system("redis", log_dir / "faults", FAULT_SETTINGS)
    yield running
    running.stop_all()


def submit_many(system: System, count: int, seconds: float = 0.05) -> list[str]:
    return [system.submit("count", {"seconds": seconds}) for _ in range(count)]


def rq_length(system: System, executor: str = "standard") -> int:
    return Queue(executor, connection=system.redis).count


def test_jobs_finish_after_redis_comes_back_without_its_data(system: System):
    system.workers.stop()
    ids = submit_many(system, 8)
    wait_for(lambda: rq_length(system) == 8, 30, "the jobs to wait in RQ")
    system.restart_redis(keep_data=False)  # queue, RQ jobs and markers: all gone
    assert system.redis.dbsize() == 0
    system.start_workers()
    for job_id in ids:
        job = system.wait_final(job_id, 90)
        assert job["status"] == "succeeded", job
    assert set(runs(system.redis, ids).values()) == {1}


def test_jobs_finish_after_their_rq_queue_is_emptied_from_the_dashboard(system: System):
    system.workers.stop()
    ids = submit_many(system, 6)
    wait_for(lambda: rq_length(system) == 6, 30, "the jobs to wait in RQ")
    Queue("standard", connection=system.redis).empty()  # rq-dashboard's "Empty" button
    system.start_workers()
    for job_id in ids:
        assert system.wait_final(job_id, 90)["status"] == "succeeded"
    assert set(runs(system.redis, ids).values()) == {1}


def test_a_job_running_while_the_data_service_is_down_succeeds(system: System):
    # Its timeout is max(JOB_TIMEOUT_MIN 2, 2 x 2) = 4 s; the store stays away longer.
    job_id = system.submit("count", {"seconds": 3}, estimated_time=2)
    system.wait_status(job_id, "running")
    system.store.stop()
    down_since = time.monotonic()
    wait_for(lambda: runs(system.redis, [job_id])[job_id] == 1
             and system.redis.exists(markers.done_key(job_id)), 30, "the job to end")
    time.sleep(max(0.0, 6 - (time.monotonic() - down_since)))  # longer than its timeout
    system.start_store()
    job = system.wait_final(job_id, 30)
    assert (job["status"], job["attempts"], job["progress"]) == ("succeeded", 1, 100)


class HangingProxy:
    """Forwards to the data service, but never answers a ``POST /jobs/bulk`` after
    forwarding it: the job is recorded, the kernel never hears so."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def forward(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            async with ClientSession() as session, session.request(
                    request.method, self.target + request.path_qs, data=body,
                    headers={key: value for key, value in request.headers.items()
                             if key.lower() in ("content-type", "x-service-token")}) as answer:
                content = await answer.read()
                status = answer.status
            if request.path == "/jobs/bulk":
                await asyncio.sleep(3600)  # applied, never answered
            return web.Response(body=content, status=status, content_type="application/json")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()


def test_a_hung_data_service_answers_503_naming_a_job_that_never_runs(system: System):
    proxy = HangingProxy(system.store_url)
    port = free_port()
    kernel = system.start("api-hung", "backend.api", "--port", str(port),
                          env={"DATA_SERVICE_URL": proxy.url, "DATA_SERVICE_TIMEOUT": "1",
                               "DATA_SERVICE_DEADLINE": "1"})
    kernel.wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200)
    answer = httpx.post(f"http://127.0.0.1:{port}/api/v1/job_executor/async", timeout=30,
                        headers=system.http.headers,
                        json={"job_name": "count", "user_id": "e2e", "estimated_time": 1})
    assert answer.status_code == 503, answer.text
    job_id = answer.json()["job_id"]
    assert job_id in answer.json()["detail"] and "never run" in answer.json()["detail"]
    kernel.stop()
    # The proxy did record it. It ends failed, with the reason, and its task never ran,
    # even after the reconciler's rounds (RECONCILE_AFTER 2 s).
    job = system.wait_final(job_id, 30)
    assert job["status"] == "failed" and "503" in job["error"]
    time.sleep(4)
    assert runs(system.redis, [job_id])[job_id] == 0
    assert system.job(job_id)["status"] == "failed"


def test_too_much_waiting_work_is_a_429_with_retry_after(system: System):
    system.workers.stop()
    port = free_port()
    kernel = system.start("api-small", "backend.api", "--port", str(port),
                          env={"MAX_BACKLOG": "3"})
    # (The test's user is an admin, exempt from the limits per user: only the backlog counts.)
    kernel.wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200)
    accepted, refused = [], []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                      headers=system.http.headers) as http:
        for _ in range(12):
            answer = http.post("/api/v1/job_executor/async", json={
                "job_name": "count", "user_id": "e2e", "estimated_time": 1})
            (accepted if answer.status_code == 200 else refused).append(answer)
            time.sleep(0.1)  # the kernel measures the backlog twice a second
    assert 3 <= len(accepted) < 12
    assert refused and all(answer.status_code == 429 for answer in refused)
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert "MAX_BACKLOG" in refused[0].json()["detail"]
    kernel.stop()
    system.start_workers()
    for answer in accepted:
        assert system.wait_final(answer.json()["job_id"], 60)["status"] == "succeeded"
