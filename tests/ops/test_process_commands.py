"""The backend image's process commands, read from docker-compose.yml, run outside Docker
with compose's settings (service addresses swapped for local servers: Redis, the
MongoDB-wire server, moto's SQS) and each becomes healthy by the probes the manifests use.

Needs every part of the backend (store, api, dispatcher, workers); no Docker, no network.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis
import rq

from backend.embedded import free_port
from tests.ops.settings_files import interpolate, k8s_docs, load_compose
from tests.services import ManagedProcess, start_redis

BIN = Path(sys.executable).parent
# compose service -> Kubernetes Deployment running the same command.
PROCESSES = {"store": "store", "api": "api", "dispatcher": "dispatcher",
             "worker": "workers", "rq-dashboard": "rq-dashboard"}
STARTUP = 60.0  # generous: a shared CI machine may be slow to import everything


@dataclass
class System:
    env: dict[str, str]
    procs: dict[str, ManagedProcess]
    redis_url: str

    def url(self, service: str) -> str:
        port = {"store": "STORE_PORT", "api": "API_PORT", "rq-dashboard": "DASHBOARD_PORT"}
        return f"http://127.0.0.1:{self.env[port[service]]}"


def _local_env(redis_url: str, mongo_url: str, sqs_url: str, data_dir: Path) -> dict[str, str]:
    """compose's x-backend-env with its ${...:-default}s resolved and its service
    addresses replaced by local ones."""
    compose = load_compose()
    env = {k: interpolate(str(v), {}) for k, v in compose["x-backend-env"].items()}
    store_port, api_port, dashboard_port = free_port(), free_port(), free_port()
    run = uuid.uuid4().hex[:8]
    env.update({
        "MONGODB_URL": mongo_url,
        "DATABASE_NAME": f"ops_{run}",
        "REDIS_URL": redis_url,
        "SQS_ENDPOINT_URL": sqs_url,
        # moto starts empty, where compose's ElasticMQ creates the queues from its config;
        # fresh names keep this run apart from other tests on the same moto.
        "QUEUE_CREATE": "true",
        "STANDARD_QUEUE_NAME": f"ops-{run}",
        "DEAD_LETTER_QUEUE_NAME": f"ops-{run}-dlq",
        "STORE_HOST": "127.0.0.1",
        "STORE_PORT": str(store_port),
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "DATA_SERVICE_URL": f"http://127.0.0.1:{store_port}",
        "API_URL": f"http://127.0.0.1:{api_port}",
        "DASHBOARD_PORT": str(dashboard_port),
        "DATA_DIR": str(data_dir),
    })
    # Every compose service address must have been swapped for a local one.
    for name, value in env.items():
        host = urlsplit(value).hostname if "://" in value else None
        assert host not in compose["services"], f"{name}={value} still names a compose service"
    return env


def _local_command(command: list[str], env: dict[str, str], service: str) -> list[str]:
    """The compose command with local binaries, bind address, port and Redis URL."""
    port = {"store": env["STORE_PORT"], "api": env["API_PORT"],
            "rq-dashboard": env["DASHBOARD_PORT"]}.get(service)
    swap = {"--host": "127.0.0.1", "--bind": "127.0.0.1", "--port": port,
            "--redis-url": env["REDIS_URL"]}
    argv = [sys.executable if command[0] == "python" else str(BIN / command[0])]
    for previous, arg in pairwise(command):
        argv.append(swap[previous] if previous in swap else arg)
    return argv


def _exec_probe(probe_argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable if probe_argv[0] == "python" else probe_argv[0], *probe_argv[1:]]
    # Inherit PATH and the rest like ManagedProcess does; the settings come from ``env``.
    return subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


def _k8s_container(deployment: str) -> dict:
    [doc] = [d for d in k8s_docs("Deployment") if d["metadata"]["name"] == deployment]
    return doc["spec"]["template"]["spec"]["containers"][0]


def _workers(redis_url: str) -> list[rq.Worker]:
    with redis.Redis.from_url(redis_url) as connection:
        return rq.Worker.all(connection=connection)


@pytest.fixture(scope="module")
def system(mongo_url: str, sqs_url: str, log_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    # A Redis of its own: RQ's worker registry must not show other tests' workers.
    redis_proc, redis_url = start_redis(log_dir)
    env = _local_env(redis_url, mongo_url, sqs_url, tmp_path_factory.mktemp("ops-data"))
    compose = load_compose()["services"]
    procs = {
        service: ManagedProcess(f"ops-{service}",
                                _local_command(compose[service]["command"], env, service),
                                log_dir, env=env)
        for service in PROCESSES
    }
    try:
        for proc in procs.values():
            proc.start()
        yield System(env, procs, redis_url)
    finally:
        for proc in procs.values():
            proc.stop()
        redis_proc.stop()


@pytest.mark.parametrize("service", ["store", "api"])
def test_http_process_passes_its_kubernetes_probes(system: System, service: str) -> None:
    container = _k8s_container(PROCESSES[service])
    live = container["livenessProbe"]["httpGet"]["path"]
    ready = container["readinessProbe"]["httpGet"]["path"]
    proc = system.procs[service]
    proc.wait_http(system.url(service) + live, timeout=STARTUP)
    proc.wait_http(system.url(service) + ready, timeout=STARTUP)


def test_rq_dashboard_serves_its_page(system: System) -> None:
    system.procs["rq-dashboard"].wait_http(system.url("rq-dashboard") + "/", timeout=STARTUP)
    assert "RQ" in httpx.get(system.url("rq-dashboard") + "/", timeout=5).text


def test_workers_register_in_rq_and_pass_their_probes(system: System) -> None:
    worker = system.procs["worker"]
    worker.wait_until(lambda: len(_workers(system.redis_url)) > 0, timeout=STARTUP)
    # The exec probes of the manifest and compose run here, on the same host as the
    # workers, so the hostname they look for is the workers' own.
    container = _k8s_container("workers")
    compose_check = load_compose()["services"]["worker"]["healthcheck"]["test"]
    for probe in (container["readinessProbe"]["exec"]["command"],
                  container["livenessProbe"]["exec"]["command"], compose_check[1:]):
        result = _exec_probe(probe, system.env)
        assert result.returncode == 0, result.stderr


def test_a_probe_fails_when_no_worker_of_this_host_is_registered(system: System,
                                                                 log_dir: Path) -> None:
    # The workers' probe is not vacuous: against an empty Redis it fails.
    empty_proc, empty_url = start_redis(log_dir)
    try:
        probe = _k8s_container("workers")["livenessProbe"]["exec"]["command"]
        assert _exec_probe(probe, {**system.env, "REDIS_URL": empty_url}).returncode != 0
    finally:
        empty_proc.stop()


def test_dispatcher_stays_up_and_passes_its_probe(system: System) -> None:
    dispatcher = system.procs["dispatcher"]
    # Up for as long as the others took to become healthy (a crash-looping dispatcher
    # would have exited by now).
    system.procs["api"].wait_http(system.url("api") + "/readyz", timeout=STARTUP)
    system.procs["worker"].wait_until(lambda: len(_workers(system.redis_url)) > 0,
                                      timeout=STARTUP)
    assert dispatcher.alive(), dispatcher.log_tail()
    probe = _k8s_container("dispatcher")["livenessProbe"]["exec"]["command"]
    result = _exec_probe(probe, system.env)
    assert result.returncode == 0, result.stderr


def test_a_job_submitted_to_the_kernel_runs_through_dispatcher_and_worker(
        system: System) -> None:
    api = system.url("api")
    system.procs["api"].wait_http(api + "/readyz", timeout=STARTUP)
    params = {"hello": "compose"}
    response = httpx.post(f"{api}/api/v1/job_executor/async", params={"executor": "standard"},
                          json={"job_name": "echo", "user_id": "ops", "estimated_time": 1,
                                "params": params}, timeout=30)
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]

    def finished() -> bool:
        job = httpx.get(f"{api}/api/v1/jobs/{job_id}", timeout=5).json()
        assert job["status"] not in {"failed", "cancelled"}, job
        return job["status"] == "succeeded"

    system.procs["worker"].wait_until(finished, timeout=STARTUP)
    assert httpx.get(f"{api}/api/v1/jobs/{job_id}", timeout=5).json()["result"] == params


@pytest.mark.parametrize("service", ["store", "api", "dispatcher", "worker"])
def test_sigterm_stops_the_process_cleanly(system: System, service: str) -> None:
    # What `docker compose stop` and a pod deletion send; the grace periods rely on it.
    proc = system.procs[service]
    assert proc.alive(), proc.log_tail()
    proc.signal(signal.SIGTERM)
    assert proc.proc is not None
    code = proc.proc.wait(timeout=45)
    assert code == 0, f"{service} exited with {code} on SIGTERM:\n{proc.log_tail()}"
