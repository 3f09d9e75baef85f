"""What the kernel shows to the network (review F11), against a real ``python -m
backend.api``: it refuses to start with a wildcard CORS origin (credentials are allowed),
sends HSTS over HTTPS only, and keeps /metrics behind METRICS_TOKEN. The deployment side
(Secure cookie, nginx's HSTS, the metrics token and the NetworkPolicies) is checked in the
manifests."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import yaml

from backend.api.headers import HSTS
from backend.local.embedded import free_port
from tests.ops.settings_files import (
    COMPOSE_FILE,
    DOCKER_DIR,
    ROOT,
    compose_env,
    k8s_docs,
    load_compose,
    load_make_secrets,
)
from tests.services import TEST_SECRETS, ManagedProcess, python_module

METRICS_TOKEN = "kernel-exposure-metrics-token"
EVIL = "https://evil.example"


def _kernel_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "API_HOST": "127.0.0.1", "API_PORT": str(free_port()),
            "DATA_SERVICE_URL": f"http://127.0.0.1:{free_port()}", "QUEUE_BACKEND": "redis",
            "FRONTEND_DIST": "/nonexistent", **extra}


@pytest.mark.parametrize("origins", ["*", "https://app.example.com, *", "null",
                                     "https://*.example.com"])
def test_the_kernel_refuses_to_start_with_a_wildcard_cors_origin(redis_url: str,
                                                                 origins: str) -> None:
    env = {**TEST_SECRETS, **_kernel_env(redis_url, CORS_ORIGINS=origins)}
    result = subprocess.run([sys.executable, "-m", "backend.api"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "CORS_ORIGINS may not contain" in result.stderr
    assert "Traceback" not in result.stderr  # a message for the operator, not a crash


@pytest.fixture(scope="module")
def kernel(redis_url: str, log_dir) -> Iterator[str]:
    env = _kernel_env(redis_url, CORS_ORIGINS="https://app.example.com",
                      TRUSTED_PROXIES="127.0.0.1", METRICS_TOKEN=METRICS_TOKEN)
    proc: ManagedProcess = python_module("kernel-exposure", "backend.api", log_dir, env).start()
    url = f"http://127.0.0.1:{env['API_PORT']}"
    try:
        proc.wait_http(f"{url}/healthz", timeout=60)
        yield url
    finally:
        proc.stop()


def test_only_a_listed_origin_gets_credentialed_cors(kernel: str) -> None:
    # The attack a wildcard allowed: another site reading a signed-in user's answers.
    evil = httpx.options(f"{kernel}/api/v1/jobs", timeout=10, headers={
        "Origin": EVIL, "Access-Control-Request-Method": "GET"})
    assert evil.headers.get("access-control-allow-origin") != EVIL
    listed = httpx.options(f"{kernel}/api/v1/jobs", timeout=10, headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"})
    assert listed.headers.get("access-control-allow-origin") == "https://app.example.com"
    assert listed.headers.get("access-control-allow-credentials") == "true"


def test_hsts_only_on_answers_to_https_requests(kernel: str) -> None:
    # Behind the ingress: TLS ends there, the trusted proxy says so in X-Forwarded-Proto.
    https = httpx.get(f"{kernel}/healthz", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert https.headers.get(HSTS[0]) == HSTS[1]
    assert "max-age=31536000" in HSTS[1]
    plain = httpx.get(f"{kernel}/healthz", timeout=10)
    assert HSTS[0] not in plain.headers


def test_metrics_want_the_token(kernel: str) -> None:
    assert httpx.get(f"{kernel}/metrics", timeout=10).status_code == 401
    wrong = httpx.get(f"{kernel}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    right = httpx.get(f"{kernel}/metrics", timeout=10,
                      headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert right.status_code == 200 and "taskbroker_" in right.text


# --- the deployments ------------------------------------------------------------------------

def test_nginx_sends_hsts_over_https_and_passes_the_ingress_scheme_on() -> None:
    nginx = (DOCKER_DIR / "nginx.conf").read_text()
    mapped = re.search(r"map \$client_scheme \$hsts \{\s*https\s+\"([^\"]+)\";\s*default \"\";",
                       nginx)
    assert mapped and mapped.group(1) == HSTS[1]
    assert re.search(r"map \$http_x_forwarded_proto \$client_scheme \{\s*default "
                     r"\$http_x_forwarded_proto;\s*\"\"\s+\$scheme;", nginx)
    assert nginx.count(f"add_header {HSTS[0]} $hsts always;") == 2  # both static locations
    assert "proxy_set_header X-Forwarded-Proto $client_scheme;" in nginx


def test_compose_and_kubernetes_send_the_session_cookie_over_tls_only() -> None:
    assert compose_env("api")["AUTH_COOKIE_SECURE"] == "${AUTH_COOKIE_SECURE:-true}"
    [configmap] = [d for d in k8s_docs("ConfigMap") if d["metadata"]["name"] ==
                   "taskbroker-config"]
    assert configmap["data"]["AUTH_COOKIE_SECURE"] == "true"
    # compose serves plain http on 127.0.0.1: its header says how browsers take that.
    header = COMPOSE_FILE.read_text().split("\nname:")[0]
    assert "Safari" in header and "http://localhost:8080" in header


def test_compose_generates_the_metrics_token_and_prometheus_sends_it() -> None:
    make = load_make_secrets()
    assert "metrics_token" in make.GENERATED
    for service in ("api", "store", "dispatcher", "worker"):
        assert compose_env(service)["METRICS_TOKEN"] == "${METRICS_TOKEN:-}", service
        assert "metrics_token" in make.ROLES[service]
    config = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        assert job["authorization"] == {"credentials_file": "/run/taskbroker/metrics_token"}
    prometheus = load_compose()["services"]["prometheus"]
    assert "secrets-prometheus:/run/taskbroker:ro" in prometheus["volumes"]
    assert prometheus["group_add"] == ["10001"]  # the files' group (mode 0640)
    assert make.ROLES["prometheus"] == ("metrics_token",)


def test_the_kubernetes_monitors_send_the_metrics_token() -> None:
    monitors = [d for d in k8s_docs() if d["apiVersion"].startswith("monitoring.")]
    for monitor in monitors:
        endpoints = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
        for endpoint in endpoints:
            assert endpoint["authorization"] == {"type": "Bearer", "credentials": {
                "name": "taskbroker-secrets", "key": "METRICS_TOKEN"}}
