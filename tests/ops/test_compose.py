"""docker-compose.yml: valid against the compose specification (offline), started in
dependency order on health, and consistent with the ElasticMQ and nginx configs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.ops.settings_files import COMPOSE_FILE, DOCKER_DIR, ROOT, default_of, load_compose

CHECK_JSONSCHEMA = str(Path(sys.executable).parent / "check-jsonschema")


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHECK_JSONSCHEMA, "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_file_passes_the_compose_spec_schema() -> None:
    result = _check(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_misspelled_key(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("depends_on:", "depend_on:", 1))
    assert _check(broken).returncode != 0


def test_the_whole_system_is_there() -> None:
    services = load_compose()["services"]
    assert set(services) == {"mongo", "redis", "elasticmq", "store", "api", "dispatcher",
                             "worker", "rq-dashboard", "web"}
    assert services["mongo"]["image"].startswith("mongo:7")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert "127.0.0.1:8080:8080" in services["web"]["ports"]


def test_dependencies_wait_for_health_and_every_service_has_a_check() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        for dependency, spec in service.get("depends_on", {}).items():
            assert spec == {"condition": "service_healthy"}, (name, dependency)
            assert dependency in services


def test_started_after_what_they_use() -> None:
    services = load_compose()["services"]

    def needs(name: str) -> set[str]:
        return set(services[name].get("depends_on", {}))

    assert needs("store") >= {"mongo"}
    assert needs("api") >= {"store", "redis", "elasticmq"}
    assert needs("dispatcher") >= {"redis", "elasticmq", "store"}
    assert needs("worker") >= {"redis"}
    assert needs("rq-dashboard") >= {"redis"}
    assert needs("web") >= {"api"}


def test_stopped_in_order_workers_first_the_data_service_last() -> None:
    # Compose stops a service before what it depends on.
    services = load_compose()["services"]

    def needs(name: str) -> set[str]:
        return set(services[name].get("depends_on", {}))

    assert "dispatcher" in needs("worker")  # workers report; the recorder takes it over
    assert "api" in needs("dispatcher") and "store" in needs("dispatcher")
    assert "store" in needs("api")


def test_redis_keeps_its_data_and_never_evicts() -> None:
    command = " ".join(load_compose()["services"]["redis"]["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command


def test_published_ports_listen_on_localhost_only() -> None:
    for name, service in load_compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_workers_get_longer_to_stop_than_the_longest_job() -> None:
    worker = load_compose()["services"]["worker"]
    grace = _seconds(worker["stop_grace_period"])
    assert grace > default_of("JOB_TIMEOUT_DEFAULT")
    assert grace > default_of("SHUTDOWN_GRACE")


def test_elasticmq_creates_the_queues_the_settings_name() -> None:
    compose = load_compose()
    env = compose["x-backend-env"]
    service = compose["services"]["elasticmq"]
    [mount] = service["volumes"]
    source, target, _ = mount.split(":")
    assert target == "/opt/elasticmq.conf"
    conf = (ROOT / source).read_text()
    standard, dlq = env["STANDARD_QUEUE_NAME"], env["DEAD_LETTER_QUEUE_NAME"]
    queues = conf[conf.index("queues {"):]
    block = re.search(rf"\n  {re.escape(standard)} \{{(.*?)\n  \}}", queues, re.S)
    assert block, f"no queue {standard!r} in {source}"
    assert re.search(rf"\n  {re.escape(dlq)} \{{", queues), f"no queue {dlq!r} in {source}"
    body = block.group(1)
    assert f'name = "{dlq}"' in body
    assert f"maxReceiveCount = {env['QUEUE_MAX_RECEIVES']}" in body
    assert f"defaultVisibilityTimeout = {env['QUEUE_VISIBILITY_TIMEOUT']} seconds" in body
    # Queue URLs that ElasticMQ hands out must point back at it from other containers.
    endpoint = urlsplit(env["SQS_ENDPOINT_URL"])
    assert f"host = {endpoint.hostname}" in conf and f"port = {endpoint.port}" in conf
    assert env["QUEUE_CREATE"] == "false"


def test_web_proxies_api_to_the_kernel_service() -> None:
    compose = load_compose()
    nginx = (DOCKER_DIR / "nginx.conf").read_text()
    upstream = re.search(r"upstream kernel \{\s*server ([\w.-]+):(\d+);", nginx)
    assert upstream, "nginx.conf has no `upstream kernel { server host:port; }`"
    assert upstream.group(1) == "api" and upstream.group(1) in compose["services"]
    assert upstream.group(2) == compose["x-backend-env"]["API_PORT"]


@pytest.mark.parametrize("name", ["store", "api", "dispatcher", "worker", "rq-dashboard"])
def test_backend_services_share_one_image_and_run_read_only(name: str) -> None:
    service = load_compose()["services"][name]
    assert service["image"] == "taskbroker-backend:local"
    assert service["build"]["dockerfile"] == "ops/docker/Dockerfile.backend"
    assert service["read_only"] is True and "/tmp" in service["tmpfs"]
