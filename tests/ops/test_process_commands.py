"""The backend image's process commands, read from docker-compose.yml, run outside Docker
the way the image runs them: through its entrypoint (ops/docker/with-secrets.sh), with the
secrets the one-shot `secrets` service makes (ops/docker/make-secrets.py) in directories
standing in for each service's own volume, a Redis that requires the generated password,
and each service's compose settings (service addresses swapped for local servers: Redis,
the MongoDB-wire server, which has no auth, so the data service is given its address in
place of the volume's mongodb_url, and moto's SQS). Each becomes healthy by the probes
the manifests and compose use, and a job submitted by a user made with the documented CLI
command runs to its result.

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

from backend.local.embedded import free_port
from tests.ops.settings_files import (
    MAKE_SECRETS,
    VOLUME_SECRETS,
    WITH_SECRETS,
    compose_env,
    interpolate,
    k8s_docs,
    load_compose,
)
from tests.services import ManagedProcess, start_redis

BIN = Path(sys.executable).parent
# compose service -> Kubernetes Deployment running the same command.
PROCESSES = {"store": "store", "api": "api", "dispatcher": "dispatcher",
             "worker": "workers", "rq-dashboard": "rq-dashboard"}
STARTUP = 60.0  # generous: a shared CI machine may be slow to import everything
ADMIN, ADMIN_PASSWORD = "ops-admin", "ops-admin-password-123"


@dataclass
class System:
    envs: dict[str, dict[str, str]]      # what compose gives each container (no secret)
    k8s_envs: dict[str, dict[str, str]]  # what the ConfigMap and its Secret keys give a pod
    secrets: dict[str, str]              # the files of the (all) secrets volume
    procs: dict[str, ManagedProcess]
    redis_url: str

    def url(self, service: str) -> str:
        port = {"store": "STORE_PORT", "api": "API_PORT", "rq-dashboard": "DASHBOARD_PORT"}
        return f"http://127.0.0.1:{self.envs['api'][port[service]]}"


def image_argv(argv: list[str]) -> list[str]:
    """A command of the backend image, with this machine's paths for its programs."""
    local = {"python": [sys.executable], "with-secrets": ["sh", str(WITH_SECRETS)],
             "make-secrets": [sys.executable, str(MAKE_SECRETS)]}
    result: list[str] = []
    for index, arg in enumerate(argv):
        if index == 0 or (result and result[-1] == str(WITH_SECRETS)):
            result += local.get(arg, [str(BIN / arg)])
        else:
            result.append(arg)
    return result


def _make_secrets(directory: Path, roles_dir: Path, redis_port: int) -> dict[str, str]:
    """The compose one-shot's command, for a Redis on this machine; each backend service's
    volume is ``roles_dir/<service>``."""
    for service in PROCESSES:
        (roles_dir / service).mkdir(parents=True)
    command = load_compose()["services"]["secrets"]["command"]
    swap = {"--dir": str(directory), "--roles-dir": str(roles_dir),
            "--redis-host": f"127.0.0.1:{redis_port}"}
    argv = [command[0]] + [swap.get(previous, arg) for previous, arg in pairwise(command)]
    subprocess.run(image_argv(argv), check=True, capture_output=True, timeout=30)
    return {p.name: p.read_text() for p in directory.iterdir()}


def _local_env(service: str, secrets_dir: Path, mongo_url: str, sqs_url: str,
               data_dir: Path, ports: dict[str, int], run: str) -> dict[str, str]:
    """compose's environment of ``service`` with its ${...:-default}s resolved and its
    service addresses replaced by local ones; the secrets come from ``secrets_dir`` as from
    the service's volume."""
    compose = load_compose()
    env = {k: interpolate(str(v), {}) for k, v in compose_env(service).items()}
    store_port, api_port, dashboard_port = ports["store"], ports["api"], ports["dashboard"]
    # Explicitly empty, like compose without a .env (and whatever this shell has):
    # with-secrets must fill each one from the files.
    env.update(dict.fromkeys(VOLUME_SECRETS.values(), ""))
    env.update({
        "DATABASE_NAME": f"ops_{run}",
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
        # Where with-secrets finds the volume's files (/run/taskbroker in the image).
        "TASKBROKER_SECRETS_DIR": str(secrets_dir),
    })
    if service == "store":
        # The volume's mongodb_url names compose's MongoDB with its root user; the local
        # MongoDB-wire server has no auth: its address wins over the file, as .env would.
        env["MONGODB_URL"] = mongo_url
    # Every compose service address must have been swapped for a local one.
    for name, value in env.items():
        host = urlsplit(value).hostname if "://" in value else None
        assert host not in compose["services"], f"{name}={value} still names a compose service"
    return env


def _local_command(command: list[str], env: dict[str, str], service: str) -> list[str]:
    """The compose command under the image's entrypoint, with local binaries, bind
    address and port."""
    port = {"store": env["STORE_PORT"], "api": env["API_PORT"],
            "rq-dashboard": env["DASHBOARD_PORT"]}.get(service)
    swap = {"--host": "127.0.0.1", "--bind": "127.0.0.1", "--port": port}
    argv = [command[0]] + [swap[previous] if previous in swap else arg
                           for previous, arg in pairwise(command)]
    return image_argv(["with-secrets", *argv])


def _exec_probe(probe_argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Inherit PATH and the rest like ManagedProcess does; the settings come from ``env``.
    return subprocess.run(image_argv(probe_argv), env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60, check=False)


def _k8s_container(deployment: str) -> dict:
    [doc] = [d for d in k8s_docs("Deployment") if d["metadata"]["name"] == deployment]
    return doc["spec"]["template"]["spec"]["containers"][0]


def _compose_check(service: str) -> list[str]:
    test = load_compose()["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return test[1:]


def _workers(redis_url: str) -> list[rq.Worker]:
    with redis.Redis.from_url(redis_url) as connection:
        return rq.Worker.all(connection=connection)


@pytest.fixture(scope="module")
def system(mongo_url: str, sqs_url: str, log_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    secrets_dir = tmp_path_factory.mktemp("ops-secrets")
    roles_dir = tmp_path_factory.mktemp("ops-secrets-roles")
    redis_port = free_port()
    secrets = _make_secrets(secrets_dir, roles_dir, redis_port)
    # A Redis of its own (RQ's worker registry must not show other tests' workers), with
    # the generated password, as compose's Redis starts.
    redis_proc, redis_url = start_redis(log_dir, port=redis_port,
                                        password=secrets["redis_password"])
    assert redis_url == secrets["redis_url"]
    ports = {"store": free_port(), "api": free_port(), "dashboard": free_port()}
    run = uuid.uuid4().hex[:8]
    data_dir = tmp_path_factory.mktemp("ops-data")
    envs = {service: _local_env(service, roles_dir / service, mongo_url, sqs_url, data_dir,
                                ports, run) for service in PROCESSES}
    # A pod: the same settings, the keys of the Secret its Deployment names, no volume.
    k8s_envs = {}
    for service, deployment in PROCESSES.items():
        keys = {e["name"] for e in _k8s_container(deployment).get("env", [])}
        values = {setting: secrets[file] for file, setting in VOLUME_SECRETS.items()
                  if setting in keys}
        k8s_envs[service] = {**envs[service], **values,
                             "TASKBROKER_SECRETS_DIR": str(secrets_dir / "absent")}
    compose = load_compose()["services"]
    procs = {
        service: ManagedProcess(
            f"ops-{service}",
            _local_command(compose[service]["command"], envs[service], service),
            log_dir, env=envs[service])
        for service in PROCESSES
    }
    try:
        for proc in procs.values():
            proc.start()
        yield System(envs, k8s_envs, secrets, procs, redis_url)
    finally:
        for proc in procs.values():
            proc.stop()
        redis_proc.stop()


def test_redis_refuses_clients_without_the_password(system: System) -> None:
    url = urlsplit(system.redis_url)
    with redis.Redis(host=url.hostname, port=url.port) as anonymous:
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()


@pytest.mark.parametrize("service", ["store", "api"])
def test_http_process_passes_its_kubernetes_probes(system: System, service: str) -> None:
    container = _k8s_container(PROCESSES[service])
    live = container["livenessProbe"]["httpGet"]["path"]
    ready = container["readinessProbe"]["httpGet"]["path"]
    proc = system.procs[service]
    proc.wait_http(system.url(service) + live, timeout=STARTUP)
    proc.wait_http(system.url(service) + ready, timeout=STARTUP)


def test_the_data_service_wants_the_token_from_the_volume(system: System) -> None:
    store = system.url("store")
    system.procs["store"].wait_http(store + "/readyz", timeout=STARTUP)
    assert httpx.get(f"{store}/users", timeout=5).status_code in (401, 403)
    wrong = httpx.get(f"{store}/users", headers={"X-Service-Token": "wrong"}, timeout=5)
    assert wrong.status_code in (401, 403)
    right = httpx.get(f"{store}/users", timeout=5,
                      headers={"X-Service-Token": system.secrets["data_service_token"]})
    assert right.status_code == 200, right.text


def test_rq_dashboard_asks_for_the_generated_password(system: System) -> None:
    url = system.url("rq-dashboard") + "/"
    proc = system.procs["rq-dashboard"]
    proc.wait_until(lambda: httpx.get(url, timeout=1.0).status_code == 401, timeout=STARTUP)
    user = system.envs["rq-dashboard"]["DASHBOARD_USERNAME"]
    assert httpx.get(url, auth=(user, "wrong"), timeout=5).status_code == 401
    page = httpx.get(url, auth=(user, system.secrets["dashboard_password"]), timeout=5)
    assert page.status_code == 200 and "RQ" in page.text


def test_rq_dashboard_passes_its_probes(system: System) -> None:
    proc = system.procs["rq-dashboard"]
    proc.wait_until(lambda: httpx.get(system.url("rq-dashboard") + "/",
                                      timeout=1.0).status_code == 401, timeout=STARTUP)
    container = _k8s_container("rq-dashboard")
    for probe in (container["readinessProbe"]["exec"]["command"],
                  container["livenessProbe"]["exec"]["command"]):
        result = _exec_probe(probe, system.k8s_envs["rq-dashboard"])
        assert result.returncode == 0, result.stderr
    result = _exec_probe(_compose_check("rq-dashboard"), system.envs["rq-dashboard"])
    assert result.returncode == 0, result.stderr
    # Not vacuous: the same check with the wrong password fails.
    wrong = {**system.k8s_envs["rq-dashboard"], "DASHBOARD_PASSWORD": "wrong"}
    assert _exec_probe(container["livenessProbe"]["exec"]["command"], wrong).returncode != 0


def test_workers_register_in_rq_and_pass_their_probes(system: System) -> None:
    worker = system.procs["worker"]
    worker.wait_until(lambda: len(_workers(system.redis_url)) > 0, timeout=STARTUP)
    # The exec probes of the manifest and compose run here, on the same host as the
    # workers, so the hostname they look for is the workers' own.
    container = _k8s_container("workers")
    for probe in (container["readinessProbe"]["exec"]["command"],
                  container["livenessProbe"]["exec"]["command"]):
        result = _exec_probe(probe, system.k8s_envs["worker"])
        assert result.returncode == 0, result.stderr
    # compose's check gets REDIS_URL through with-secrets.
    result = _exec_probe(_compose_check("worker"), system.envs["worker"])
    assert result.returncode == 0, result.stderr


def test_a_probe_fails_when_no_worker_of_this_host_is_registered(system: System,
                                                                 log_dir: Path) -> None:
    # The workers' probe is not vacuous: against an empty Redis it fails.
    empty_proc, empty_url = start_redis(log_dir)
    try:
        probe = _k8s_container("workers")["livenessProbe"]["exec"]["command"]
        assert _exec_probe(probe, {**system.k8s_envs["worker"],
                                   "REDIS_URL": empty_url}).returncode != 0
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
    result = _exec_probe(probe, system.k8s_envs["dispatcher"])
    assert result.returncode == 0, result.stderr
    result = _exec_probe(_compose_check("dispatcher"), system.envs["dispatcher"])
    assert result.returncode == 0, result.stderr


def test_a_job_submitted_to_the_kernel_runs_through_dispatcher_and_worker(
        system: System) -> None:
    api = system.url("api")
    system.procs["api"].wait_http(api + "/readyz", timeout=STARTUP)
    submit = f"{api}/api/v1/job_executor/async"
    body = {"job_name": "echo", "user_id": ADMIN, "estimated_time": 1,
            "params": {"hello": "compose"}}
    assert httpx.post(submit, json=body, timeout=30).status_code == 401
    # The first admin, made as docker-compose.yml's header says (`docker compose exec api
    # with-secrets taskbroker users create NAME --admin`; --password-stdin for the prompt).
    created = subprocess.run(
        image_argv(["with-secrets", "taskbroker", "users", "create", ADMIN, "--admin",
                    "--password-stdin"]), input=ADMIN_PASSWORD + "\n",
        env={**os.environ, **system.envs["api"]}, capture_output=True, text=True, timeout=60,
        check=False)
    assert created.returncode == 0, created.stdout + created.stderr
    issued = httpx.post(f"{api}/api/v1/auth/token", timeout=30,
                        json={"username": ADMIN, "password": ADMIN_PASSWORD, "name": "ops"})
    assert issued.status_code == 201, issued.text
    auth = {"Authorization": f"Bearer {issued.json()['token']}"}
    response = httpx.post(submit, params={"executor": "standard"}, json=body, headers=auth,
                          timeout=30)
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]

    def finished() -> bool:
        job = httpx.get(f"{api}/api/v1/jobs/{job_id}", headers=auth, timeout=5).json()
        assert job["status"] not in {"failed", "cancelled"}, job
        return job["status"] == "succeeded"

    system.procs["worker"].wait_until(finished, timeout=STARTUP)
    job = httpx.get(f"{api}/api/v1/jobs/{job_id}", headers=auth, timeout=5).json()
    assert job["result"] == body["params"]


@pytest.mark.parametrize("service", ["store", "api", "dispatcher", "worker", "rq-dashboard"])
def test_sigterm_stops_the_process_cleanly(system: System, service: str) -> None:
    # What `docker compose stop` and a pod deletion send (tini passes it on); the grace
    # periods rely on it. with-secrets execs, so the signal reaches the process itself.
    proc = system.procs[service]
    assert proc.alive(), proc.log_tail()
    proc.signal(signal.SIGTERM)
    assert proc.proc is not None
    code = proc.proc.wait(timeout=45)
    # rq-dashboard (Flask's server) has no SIGTERM handler and holds nothing: it is enough
    # that it goes at once rather than waiting for the kill after the grace period.
    allowed = {0, -signal.SIGTERM} if service == "rq-dashboard" else {0}
    assert code in allowed, f"{service} exited with {code} on SIGTERM:\n{proc.log_tail()}"
