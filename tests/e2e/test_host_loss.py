"""A whole host lost: two replica sets (kernel, dispatcher, worker executor, data service)
share one Redis and one MongoDB; every process of one set is SIGKILLed at once while
jobs run. The other set finishes every accepted job: the dead set's running jobs within
a few heartbeats, its scheduled retries without waiting on its scheduler lock."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rq.registry import StartedJobRegistry

from backend.local.embedded import free_port
from tests.e2e.conftest import FINAL, System, _start_system, wait_for
from tests.e2e.tasks import runs
from tests.services import ManagedProcess

pytestmark = pytest.mark.e2e

HEARTBEAT = 0.5
SETTINGS = {"TASK_MODULES": "tests.e2e.tasks", "WORKER_HEARTBEAT": str(HEARTBEAT),
            "RETRY_BACKOFF_BASE": "1", "RECONCILE_INTERVAL": "2", "RECONCILE_AFTER": "5"}


class ReplicaSet:
    """Kernel, data service, dispatcher and executor B, beside the system's set A."""

    def __init__(self, system: System) -> None:
        self.store_url = f"http://127.0.0.1:{free_port()}"
        self.api_url = f"http://127.0.0.1:{free_port()}"
        env = {**system.env, "DATA_SERVICE_URL": self.store_url}
        self.processes: list[ManagedProcess] = []

        def start(role: str, module: str, *args: str) -> ManagedProcess:
            proc = system.start(f"b-{role}", module, *args, env=env)
            self.processes.append(proc)
            return proc

        start("store", "backend.store", "--port", self.store_url.rsplit(":", 1)[1]).wait_http(
            f"{self.store_url}/readyz", 60)
        start("api", "backend.api", "--port", self.api_url.rsplit(":", 1)[1]).wait_http(
            f"{self.api_url}/readyz", 60)
        start("dispatcher", "backend.dispatcher")
        start("workers", "backend.workers", "--workers", "2")


@pytest.fixture(scope="module")
def two_hosts(log_dir: Path) -> Iterator[tuple[System, ReplicaSet]]:
    system = _start_system("redis", log_dir / "hosts", SETTINGS)
    try:
        yield system, ReplicaSet(system)
    finally:
        system.stop_all()


def kill_host(system: System) -> None:
    """SIGKILL set A: its kernel, data service, dispatcher, and the executor with its
    workers (one process group), all at once."""
    for role in ("api", "store", "dispatcher"):
        os.kill(system.processes[role].pid, signal.SIGKILL)
    os.killpg(system.processes["workers"].pid, signal.SIGKILL)


def test_the_other_host_finishes_every_accepted_job(two_hosts):
    system, other = two_hosts
    wait_for(lambda: system.idle_workers() >= 4, 60, "both hosts' workers")
    kernels = [system.api_url, other.api_url]
    accepted: list[str] = []
    with httpx.Client(timeout=10, headers=system.http.headers) as http:
        for n in range(16):
            name, params = (("fail", {"succeed_on_attempt": 2}) if n % 4 == 0
                            else ("count", {"seconds": 1.5}))
            answer = http.post(f"{kernels[n % 2]}/api/v1/job_executor/async",
                               json={"job_name": name, "user_id": "hosts", "estimated_time": 2,
                                     "params": params})
            assert answer.status_code == 200, answer.text
            accepted.append(answer.json()["job_id"])
    registry = StartedJobRegistry("standard", connection=system.redis)
    wait_for(lambda: len(registry.get_job_ids(cleanup=False)) >= 3, 30, "jobs to be running")
    kill_host(system)
    killed_at = time.monotonic()

    def all_final() -> bool:
        with httpx.Client(timeout=10, headers=system.http.headers) as http:
            return all(http.get(f"{other.api_url}/api/v1/jobs/{job_id}").json()["status"]
                       in FINAL for job_id in accepted)

    wait_for(all_final, 60, "the other host to finish every job", interval=0.5)
    took = time.monotonic() - killed_at
    with httpx.Client(timeout=10, headers=system.http.headers) as http:
        jobs = [http.get(f"{other.api_url}/api/v1/jobs/{job_id}").json() for job_id in accepted]
    assert {job["status"] for job in jobs} == {"succeeded"}, jobs
    # Recovery took a few heartbeats and retry backoffs, not RQ's minute-long lock.
    assert took < 30, f"took {took:.0f} s"
    print(f"host loss: {len(jobs)} jobs finished {took:.1f} s after the kill, "
          f"{sum(1 for j in jobs if j['attempts'] > 1)} with more than one attempt")
    counted = runs(system.redis, [j["id"] for j in jobs if j["name"] == "count"])
    for job in jobs:
        if job["name"] == "count":
            assert counted[job["id"]] <= job["attempts"], job
