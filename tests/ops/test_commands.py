"""The process commands are the brief's, identical in the Dockerfile, docker-compose.yml,
the Kubernetes manifests and the Procfile (only host and port values vary), and none of
them carries a secret on its command line."""

from __future__ import annotations

import json
import re

import pytest

from tests.ops.settings_files import (
    DOCKER_DIR,
    ROOT,
    dockerfile_instructions,
    k8s_docs,
    load_compose,
    procfile_commands,
)

# The brief's table: `python -m backend.store [--host H] [--port P]`, ...
_HOST_PORT = r"(?: --host \S+)?(?: --port \S+)?"
BRIEF = {
    "store": rf"python -m backend\.store{_HOST_PORT}",
    "api": rf"python -m backend\.api{_HOST_PORT}",
    "dispatcher": r"python -m backend\.dispatcher",
    "workers": r"python -m backend\.workers(?: --workers \S+)?",
    # Our wrapper of rq-dashboard's app (basic auth, RQ's JSON serializer, same-origin
    # actions); it reads REDIS_URL and the credentials from the settings.
    "rq-dashboard": r"python -m backend\.dashboard(?: --bind \S+)?(?: --port \S+)?",
}
# Process -> its name in each file.
COMPOSE_NAMES = {"store": "store", "api": "api", "dispatcher": "dispatcher",
                 "workers": "worker", "rq-dashboard": "rq-dashboard"}
K8S_NAMES = {"store": "store", "api": "api", "dispatcher": "dispatcher",
             "workers": "workers", "rq-dashboard": "rq-dashboard"}
PROCFILE_NAMES = {"store": "store", "api": "api", "dispatcher": "dispatcher",
                  "workers": "workers", "rq-dashboard": "dashboard"}


def _matches(process: str, argv: list[str]) -> bool:
    return re.fullmatch(BRIEF[process], " ".join(argv)) is not None


def _k8s_container(deployment: str) -> dict:
    [doc] = [d for d in k8s_docs("Deployment") if d["metadata"]["name"] == deployment]
    [container] = doc["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("process", sorted(BRIEF))
def test_compose_runs_the_brief_command(process: str) -> None:
    command = load_compose()["services"][COMPOSE_NAMES[process]]["command"]
    assert isinstance(command, list), "exec form: no shell between Docker and the process"
    assert _matches(process, command), command


@pytest.mark.parametrize("process", sorted(BRIEF))
def test_kubernetes_runs_the_brief_command_under_the_image_entrypoint(process: str) -> None:
    container = _k8s_container(K8S_NAMES[process])
    # `command` would replace the image's ENTRYPOINT (tini, which forwards SIGTERM).
    assert "command" not in container
    assert _matches(process, container["args"]), container["args"]


@pytest.mark.parametrize("process", sorted(BRIEF))
def test_compose_and_kubernetes_run_the_same_command(process: str) -> None:
    compose = load_compose()["services"][COMPOSE_NAMES[process]]["command"]
    k8s = _k8s_container(K8S_NAMES[process])["args"]
    assert compose == k8s


def test_backend_image_defaults_to_the_kernel_under_tini_and_with_secrets() -> None:
    instructions = dict(
        (i, a) for i, a in dockerfile_instructions(DOCKER_DIR / "Dockerfile.backend")
        if i in {"CMD", "ENTRYPOINT"})
    # tini is PID 1 (forwards SIGTERM, reaps); with-secrets exports compose's generated
    # secrets, then execs the command (so tini signals the process itself).
    assert json.loads(instructions["ENTRYPOINT"]) == ["tini", "--", "with-secrets"]
    assert _matches("api", json.loads(instructions["CMD"]))


def _all_commands() -> dict[str, list[str]]:
    commands = {f"compose {name}": service["command"]
                for name, service in load_compose()["services"].items()
                if isinstance(service.get("command"), list)}
    for deployment in k8s_docs("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            commands[f"k8s {container['name']}"] = container.get("args", [])
    for name, argv in procfile_commands(ROOT / "Procfile").items():
        commands[f"Procfile {name}"] = argv
    return commands


@pytest.mark.parametrize("where", sorted(_all_commands()))
def test_no_command_line_carries_a_secret(where: str) -> None:
    # A command line is visible to every process of the host (ps) and in `docker inspect`;
    # the processes read REDIS_URL and the credentials from their environment.
    argv = _all_commands()[where]
    text = " ".join(argv)
    assert "--redis-url" not in argv and "redis://" not in text, where
    assert not re.search(r"://[^/@\s]*:[^/@\s]+@", text), where
    for arg in argv:
        if "--requirepass" in arg:  # Redis: only from the secrets file, never a literal
            assert re.search(r'--requirepass "\$\$\w+"', arg), arg


@pytest.mark.parametrize("process", sorted(BRIEF))
def test_procfile_runs_the_brief_command(process: str) -> None:
    commands = procfile_commands(ROOT / "Procfile")
    assert _matches(process, commands[PROCFILE_NAMES[process]]), commands[PROCFILE_NAMES[process]]


def test_rq_dashboard_port_is_the_dashboard_port_everywhere() -> None:
    compose = load_compose()
    command = compose["services"]["rq-dashboard"]["command"]
    port = command[command.index("--port") + 1]
    assert port == compose["x-backend-env"]["DASHBOARD_PORT"]
    container = _k8s_container("rq-dashboard")
    assert container["args"][container["args"].index("--port") + 1] == port
    assert container["ports"][0]["containerPort"] == int(port)
