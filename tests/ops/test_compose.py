"""docker-compose.yml: valid against the compose specification (offline), started in
dependency order on health after its one-shot `secrets` service, consistent with the
ElasticMQ and nginx configs, with Redis behind a password and only the web app, the kernel
and rq-dashboard published (on 127.0.0.1)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.ops.settings_files import (
    COMPOSE_FILE,
    DOCKER_DIR,
    ROOT,
    SECRETS_MOUNT,
    default_of,
    load_compose,
    load_make_secrets,
)

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


BACKEND_SERVICES = ["store", "api", "dispatcher", "worker", "rq-dashboard"]
# Started only by `docker compose --profile monitoring up`.
MONITORING = {"prometheus", "grafana"}
# The one-shot service that fills the secrets volume; it exits, the others wait for it.
ONE_SHOT = "secrets"
SECRETS_VOLUME = "secrets"


def _mounts(service: dict) -> dict[str, str]:
    """``source -> target[:mode]`` of a service's volume mounts (short syntax)."""
    return {v.split(":", 1)[0]: v.split(":", 1)[1] for v in service.get("volumes", [])}


def test_the_whole_system_is_there() -> None:
    services = load_compose()["services"]
    assert set(services) == {"secrets", "mongo", "redis", "elasticmq", "store", "api",
                             "dispatcher", "worker", "rq-dashboard", "web",
                             *MONITORING}
    assert services["mongo"]["image"].startswith("mongo:7")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert "127.0.0.1:8080:8080" in services["web"]["ports"]


def test_dependencies_wait_for_health_and_every_service_has_a_check() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        if name == ONE_SHOT:
            continue
        assert "healthcheck" in service and not service["healthcheck"].get("disable"), \
            f"{name} has no healthcheck"
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services
            # Long-running services are waited for until healthy; the one-shot until it
            # has exited 0 (a failed one stops everything that needs the secrets).
            expected = ("service_completed_successfully" if dependency == ONE_SHOT
                        else "service_healthy")
            assert spec == {"condition": expected}, (name, dependency)


def test_the_secrets_service_runs_once_offline_and_alone_writes_the_volume() -> None:
    compose = load_compose()
    service = compose["services"][ONE_SHOT]
    assert service["image"] == "taskbroker-backend:local"
    assert service["build"]["dockerfile"] == "ops/docker/Dockerfile.backend"
    # Restarting it would be harmless, but `unless-stopped` would restart it forever
    # after it exits 0.
    assert service["restart"] == "no"
    assert service["network_mode"] == "none"
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert service["healthcheck"] == {"disable": True}
    roles_dir = service["command"][service["command"].index("--roles-dir") + 1]
    roles = {f"{SECRETS_VOLUME}-{name}": f"{roles_dir}/{name}"
             for name in load_make_secrets().ROLES}
    assert _mounts(service) == {SECRETS_VOLUME: SECRETS_MOUNT, **roles}
    command = service["command"]
    assert command[0] == "make-secrets"
    assert command[command.index("--dir") + 1] == SECRETS_MOUNT
    # The URL it writes names compose's Redis (REDIS_URL is not pinned anywhere else).
    host, port = command[command.index("--redis-host") + 1].split(":")
    assert host in compose["services"] and host == "redis" and port == "6379"
    assert command[command.index("--mongo-host") + 1] == "mongo:27017"
    assert {SECRETS_VOLUME, *roles} <= set(compose["volumes"])
    for name, other in compose["services"].items():
        if name != ONE_SHOT:
            # All the secrets are the one-shot's alone; a service mounts its share, read-only.
            assert SECRETS_VOLUME not in _mounts(other), name
            for volume, target in _mounts(other).items():
                if volume in roles:
                    assert target == f"{SECRETS_MOUNT}:ro", name


def test_whatever_reads_the_secrets_starts_after_they_are_made() -> None:
    services = load_compose()["services"]
    readers = {name for name, s in services.items()
               if name != ONE_SHOT and any(v.startswith(SECRETS_VOLUME) for v in _mounts(s))}
    assert readers == {"redis", "mongo", "prometheus", *BACKEND_SERVICES}
    for name in readers:
        assert services[name]["depends_on"][ONE_SHOT] == {
            "condition": "service_completed_successfully"}, name


def test_checks_that_need_the_secrets_go_through_with_secrets() -> None:
    # Health checks (like `docker compose exec`) run beside the image's ENTRYPOINT, not
    # through it: one that reads the settings needs with-secrets for REDIS_URL or
    # DASHBOARD_PASSWORD.
    services = load_compose()["services"]
    for name in BACKEND_SERVICES:
        test = services[name]["healthcheck"]["test"]
        assert test[0] == "CMD", name
        if "get_settings()" in " ".join(test):
            assert test[1:3] == ["with-secrets", "python"], name
        else:
            assert test[1] == "python", name


def test_started_after_what_they_use() -> None:
    services = load_compose()["services"]

    def needs(name: str) -> set[str]:
        return set(services[name].get("depends_on", {}))

    assert needs("redis") >= {"secrets"}
    for name in BACKEND_SERVICES:
        assert "secrets" in needs(name), name
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


def test_redis_requires_the_generated_password() -> None:
    redis = load_compose()["services"]["redis"]
    sh, flag, script = redis["command"]
    assert (sh, flag) == ("sh", "-c")
    # `$$` is compose's literal `$`: the shell reads the file when the container starts.
    read = re.search(r'(\w+)="\$\$\(cat (\S+)\)"', script)
    assert read, script
    variable, path = read.groups()
    assert path == f"{SECRETS_MOUNT}/redis_password"
    assert f'test -n "$${variable}"' in script, "an empty file must not mean no password"
    assert script.startswith("set -eu;")
    # The official image's entrypoint, so Redis still drops root for the redis user.
    assert f'exec docker-entrypoint.sh redis-server --requirepass "$${variable}"' in script
    assert _mounts(redis)["secrets-redis"] == f"{SECRETS_MOUNT}:ro"
    check = " ".join(redis["healthcheck"]["test"])
    assert f'REDISCLI_AUTH="$$(cat {path})"' in check and "PONG" in check


def test_published_ports_listen_on_localhost_only() -> None:
    for name, service in load_compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_only_the_web_app_the_kernel_and_rq_dashboard_are_published() -> None:
    # The data service, Redis, MongoDB and ElasticMQ are reached on compose's network only.
    services = load_compose()["services"]
    published = {name for name, service in services.items()
                 if service.get("ports") and not service.get("profiles")}
    assert published == {"web", "api", "rq-dashboard"}
    assert "expose" not in services["store"]


def test_header_tells_how_to_get_in() -> None:
    # The operator's first steps: the generated dashboard password, the first admin.
    text = COMPOSE_FILE.read_text()
    assert f"docker compose exec rq-dashboard cat {SECRETS_MOUNT}/dashboard_password" in text
    assert "docker compose exec api with-secrets taskbroker users create NAME --admin" in text


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


def test_the_tls_override_gives_nginx_https_with_http2() -> None:
    # Browsers speak HTTP/2 over TLS only: the override adds a TLS listener to the same
    # server (same locations, same headers) through the include in nginx.conf.
    override = DOCKER_DIR / "compose.tls.yaml"
    result = _check(override)
    assert result.returncode == 0, result.stdout + result.stderr
    web = yaml.safe_load(override.read_text())["services"]["web"]
    mounts = {target: source for source, target, _ in (v.split(":") for v in web["volumes"])}
    nginx = (DOCKER_DIR / "nginx.conf").read_text()
    server = nginx[nginx.index("server {"):]
    include = re.search(r"^    include (/etc/nginx/tls/)\*\.conf;", server, re.M)
    assert include, "nginx.conf's server block does not include the TLS listener"
    listener = [t for t in mounts if t.startswith(include.group(1)) and t.endswith(".conf")]
    assert [mounts[t] for t in listener] == ["./ops/docker/nginx-tls.conf"], mounts
    tls = (DOCKER_DIR / "nginx-tls.conf").read_text()
    assert re.search(r"^listen 8443 ssl;$", tls, re.M) and re.search(r"^http2 on;$", tls, re.M)
    for directive in ("ssl_certificate", "ssl_certificate_key"):
        path = re.search(rf"^{directive} (\S+);$", tls, re.M)
        assert path and path.group(1) in mounts, directive
        assert mounts[path.group(1)].startswith("./.data/"), "the key stays out of git"
    assert web["ports"] == ["127.0.0.1:8443:8443"]


def test_web_proxies_api_to_the_kernel_service() -> None:
    compose = load_compose()
    nginx = (DOCKER_DIR / "nginx.conf").read_text()
    upstream = re.search(r"upstream kernel \{\s*server ([\w.-]+):(\d+);", nginx)
    assert upstream, "nginx.conf has no `upstream kernel { server host:port; }`"
    assert upstream.group(1) == "api" and upstream.group(1) in compose["services"]
    assert upstream.group(2) == compose["x-backend-env"]["API_PORT"]


@pytest.mark.parametrize("name", BACKEND_SERVICES)
def test_backend_services_share_one_image_and_run_read_only(name: str) -> None:
    service = load_compose()["services"][name]
    assert service["image"] == "taskbroker-backend:local"
    assert service["build"]["dockerfile"] == "ops/docker/Dockerfile.backend"
    assert service["read_only"] is True and "/tmp" in service["tmpfs"]
    assert _mounts(service) == {f"{SECRETS_VOLUME}-{name}": f"{SECRETS_MOUNT}:ro"}
