"""Each process holds only its own secrets (review F8): in compose (each service's own
secrets volume and environment, networks that keep the workers away from the data service,
MongoDB and ElasticMQ, MongoDB with auth), in Kubernetes (the Secret's keys one by one),
and in the local run (each child's environment). The share of each process is declared
once, in backend.local.supervisor.PROCESS_SECRETS; what a worker or rq-dashboard must never hold is
spelled out here again, so a wrong declaration fails too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from backend.local.supervisor import PROCESS_SECRETS, SECRET_SETTINGS, process_env
from backend.settings import Settings
from tests.ops.settings_files import (
    MAKE_SECRETS,
    PROCESSES,
    SECRETS_MOUNT,
    VOLUME_SECRETS,
    WITH_SECRETS,
    compose_env,
    is_secret,
    k8s_docs,
    load_compose,
    load_make_secrets,
)

# What takes over the system: a session for anyone (AUTH_SECRET), any call to the data
# service, an admin user included (DATA_SERVICE_TOKEN), any user's webhook signature
# (WEBHOOK_SECRET), the database itself (MONGODB_URL with its credentials).
TAKEOVER = {"AUTH_SECRET", "DATA_SERVICE_TOKEN", "WEBHOOK_SECRET", "MONGODB_URL"}
# Task code runs in the workers; rq-dashboard renders what tasks wrote (F2, F3).
EXPOSED = ("workers", "dashboard")
MAKE = load_make_secrets()
FILE_OF = {setting: file for file, setting in VOLUME_SECRETS.items()}


def test_the_declared_shares_match_the_review() -> None:
    assert PROCESS_SECRETS["workers"] == {"REDIS_URL", "METRICS_TOKEN"}
    assert PROCESS_SECRETS["dashboard"] == {"REDIS_URL", "DASHBOARD_PASSWORD"}
    assert PROCESS_SECRETS["store"] == {"MONGODB_URL", "DATA_SERVICE_TOKEN", "METRICS_TOKEN"}
    assert {"AUTH_SECRET", "DATA_SERVICE_TOKEN", "REDIS_URL", "WEBHOOK_SECRET"} <= \
        PROCESS_SECRETS["api"]
    assert "AUTH_SECRET" not in PROCESS_SECRETS["dispatcher"]
    for process in EXPOSED:
        assert not PROCESS_SECRETS[process] & TAKEOVER, process
    # Only the kernel and the dispatcher use the queue: the AWS keys are theirs alone.
    holders = {p for p, names in PROCESS_SECRETS.items() if "AWS_SECRET_ACCESS_KEY" in names}
    assert holders == {"api", "dispatcher"}
    assert set().union(*PROCESS_SECRETS.values()) <= SECRET_SETTINGS


# --- compose --------------------------------------------------------------------------------

def _compose_secrets(service: str) -> set[str]:
    """The secret settings a compose service gets: from its environment (pinned or .env)
    and from the files of the one volume it mounts at /run/taskbroker."""
    mounts = dict(v.split(":", 1) for v in load_compose()["services"][service]["volumes"])
    [volume] = [v for v, target in mounts.items() if target.startswith(SECRETS_MOUNT)]
    role = volume.removeprefix("secrets-")
    from_files = {VOLUME_SECRETS[name] for name in MAKE.ROLES[role]}
    from_env = {name for name in compose_env(service) if is_secret(name)}
    return from_files | from_env


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_each_compose_service_gets_its_process_secrets_only(process: str) -> None:
    service = PROCESSES[process][0]
    assert _compose_secrets(service) == PROCESS_SECRETS[process], service


def test_a_compose_worker_or_dashboard_holds_nothing_that_takes_over() -> None:
    for process in EXPOSED:
        service = PROCESSES[process][0]
        assert not _compose_secrets(service) & TAKEOVER, service
        assert "REDIS_URL" in _compose_secrets(service)


def _run_make(tmp_path: Path, roles: list[str]) -> tuple[Path, Path]:
    master, roles_dir = tmp_path / "all", tmp_path / "roles"
    for role in roles:
        (roles_dir / role).mkdir(parents=True)
    result = subprocess.run([sys.executable, str(MAKE_SECRETS), "--dir", str(master),
                             "--roles-dir", str(roles_dir)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    return master, roles_dir


def test_make_secrets_gives_each_role_volume_its_files_only(tmp_path: Path) -> None:
    master, roles_dir = _run_make(tmp_path, ["worker", "api"])
    # A file a role no longer gets (an older layout) is taken away at the next start.
    (roles_dir / "worker" / "auth_secret").write_text("left over")
    _run_make_again = subprocess.run(
        [sys.executable, str(MAKE_SECRETS), "--dir", str(master), "--roles-dir",
         str(roles_dir)], capture_output=True, text=True, timeout=30, check=True)
    assert "worker gets redis_url, metrics_token" in _run_make_again.stdout
    for role in ("worker", "api"):
        files = {p.name: p for p in (roles_dir / role).iterdir()}
        assert set(files) == set(MAKE.ROLES[role]), role
        for name, path in files.items():
            assert path.read_text() == (master / name).read_text(), (role, name)
            assert path.stat().st_mode & 0o777 == 0o640, (role, name)
        assert (roles_dir / role).stat().st_mode & 0o777 == 0o750
    # A role whose volume is not mounted gets no directory.
    assert not (roles_dir / "store").exists()


@pytest.mark.parametrize("process", EXPOSED)
def test_with_secrets_in_a_worker_or_dashboard_exports_no_takeover_secret(
        tmp_path: Path, process: str) -> None:
    # What the container's process gets: the entrypoint run on the role's volume, with the
    # settings compose gives that service (.env setting every secret, the worst case).
    service = PROCESSES[process][0]
    master, roles_dir = _run_make(tmp_path, [service])
    dotenv = {name: f"dotenv-{name.lower()}" for name in SECRET_SETTINGS}
    env = {k: v for k, v in os.environ.items() if k not in SECRET_SETTINGS}
    for name, raw in compose_env(service).items():
        env[name] = str(raw).replace(f"${{{name}:-}}", dotenv.get(name, ""))
    env["TASKBROKER_SECRETS_DIR"] = str(roles_dir / service)
    show = "import json, os; print(json.dumps(dict(os.environ)))"
    result = subprocess.run(["sh", str(WITH_SECRETS), sys.executable, "-c", show], env=env,
                            capture_output=True, text=True, timeout=30, check=True)
    exported = json.loads(result.stdout)
    for name in TAKEOVER:
        assert not exported.get(name), (service, name)
        if name in FILE_OF:
            value = (master / FILE_OF[name]).read_text()
            assert value not in result.stdout, (service, name)
            # ...nor anywhere the container can read.
            for path in (roles_dir / service).iterdir():
                assert value not in path.read_text(), (service, name, path.name)
    assert urlsplit(exported["REDIS_URL"]).password == (master / "redis_password").read_text()


def test_mongo_runs_with_a_generated_root_user_only_the_data_service_holds() -> None:
    mongo = load_compose()["services"]["mongo"]
    assert mongo["environment"]["MONGO_INITDB_ROOT_USERNAME"] == MAKE.MONGO_USER
    sh, flag, script = mongo["command"]
    assert (sh, flag) == ("sh", "-c") and script.startswith("set -eu;")
    assert f'MONGO_INITDB_ROOT_PASSWORD="$$(cat {SECRETS_MOUNT}/mongo_password)"' in script
    assert 'test -n "$$MONGO_INITDB_ROOT_PASSWORD"' in script
    assert "export MONGO_INITDB_ROOT_PASSWORD" in script
    # The image's entrypoint: it creates the user and adds --auth when both are set.
    assert script.endswith("exec docker-entrypoint.sh mongod")
    assert f"secrets-mongo:{SECRETS_MOUNT}:ro" in mongo["volumes"]
    assert MAKE.ROLES["mongo"] == ("mongo_password",)
    holders = {role for role, files in MAKE.ROLES.items()
               if "mongodb_url" in files or "mongo_password" in files}
    assert holders == {"store", "mongo"}


def _networks() -> dict[str, set[str]]:
    return {name: set(service.get("networks", []))
            for name, service in load_compose()["services"].items()
            if service.get("network_mode") != "none"}


def test_compose_networks_keep_the_workers_to_redis() -> None:
    networks = _networks()
    declared = load_compose()["networks"]
    for name, joined in networks.items():
        # Nobody on compose's default network, where everything would reach everything.
        assert joined and joined <= set(declared), name

    def reach(name: str) -> set[str]:
        return {other for other, joined in networks.items()
                if other != name and joined & networks[name]}

    assert reach("worker") <= {"redis", "api", "dispatcher", "rq-dashboard", "prometheus"}
    assert "redis" in reach("worker")
    assert reach("rq-dashboard") <= reach("worker") | {"worker"}
    # MongoDB: its one client. ElasticMQ (no auth): the queue's two users.
    assert reach("mongo") == {"store"}
    assert reach("elasticmq") == {"api", "dispatcher", "store"}
    assert not networks["store"] & networks["worker"]
    # ...and whoever needs a service still reaches it.
    for name, needs in {"api": {"store", "redis", "elasticmq"},
                        "dispatcher": {"store", "redis", "elasticmq"},
                        "store": {"mongo"}, "web": {"api"},
                        "prometheus": {"api", "store", "dispatcher", "worker"},
                        "grafana": {"prometheus"}}.items():
        assert needs <= reach(name), (name, needs - reach(name))
    assert declared["db"] == {"internal": True}


# --- Kubernetes -----------------------------------------------------------------------------

def _k8s_secrets(deployment: str) -> set[str]:
    [doc] = [d for d in k8s_docs("Deployment") if d["metadata"]["name"] == deployment]
    [container] = doc["spec"]["template"]["spec"]["containers"]
    assert all("secretRef" not in ref for ref in container["envFrom"]), deployment
    return {entry["name"] for entry in container.get("env", [])
            if "secretKeyRef" in entry.get("valueFrom", {})}


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_each_deployment_gets_its_process_keys_of_the_secret_only(process: str) -> None:
    deployment = PROCESSES[process][1]
    assert _k8s_secrets(deployment) == PROCESS_SECRETS[process], deployment
    [doc] = [d for d in k8s_docs("Deployment") if d["metadata"]["name"] == deployment]
    # No service account token either: the pod cannot read the rest of the Secret.
    assert doc["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


# --- the local run --------------------------------------------------------------------------

def test_the_local_run_gives_each_child_its_secrets_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRET_SETTINGS:
        monkeypatch.setenv(name, f"set-{name.lower()}-0123456789abcdef0123456789")
    monkeypatch.setenv("REDIS_URL", "redis://:pw@127.0.0.1:6380/0")
    monkeypatch.setenv("MONGODB_URL", "mongodb://127.0.0.1:27018")
    settings = Settings()
    base = dict(os.environ)  # the launcher's own environment holds them all
    for process, own in PROCESS_SECRETS.items():
        env = process_env(process, settings, base)
        for name in SECRET_SETTINGS:
            # Withheld ones are set empty, so a .env in the working directory cannot
            # hand them back either.
            assert (env[name] != "") == (name in own), (process, name)
