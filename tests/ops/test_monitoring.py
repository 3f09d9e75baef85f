"""The monitoring files: the Grafana dashboard asks only for metrics the code defines,
Prometheus scrapes every /metrics where the settings put it, compose runs both under the
`monitoring` profile only, and the Kubernetes pods say where to scrape them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from backend.metrics import family_names
from tests.ops.settings_files import ROOT, default_of, k8s_docs, load_compose

DASHBOARD = ROOT / "ops" / "grafana" / "taskbroker.json"
PROMETHEUS = ROOT / "ops" / "prometheus" / "prometheus.yml"
PROVISIONING = ROOT / "ops" / "grafana" / "provisioning"
# PromQL's functions, keywords and the label names our queries use: not metric names.
_PROMQL_WORDS = {
    "sum", "rate", "increase", "histogram_quantile", "max", "min", "avg", "by", "without",
    "le", "task", "executor", "queue", "kind", "state", "app_name", "path", "route",
    "outcome", "method", "status_code",
}
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', "", expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    words = set(_IDENTIFIER.findall(without_ranges))
    return {word for word in words if word not in _PROMQL_WORDS}


def test_the_dashboard_queries_only_metrics_the_code_defines() -> None:
    defined = family_names()
    used: set[str] = set()
    for expr in _expressions():
        names = _metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - defined
        assert not unknown, f"{expr!r} asks for metrics no process exposes: {sorted(unknown)}"
        used |= names
    # Every part shows on it: jobs, times, queues, workers, HTTP, data-service calls.
    for name in ("taskbroker_jobs_succeeded_total", "taskbroker_jobs_failed_total",
                 "taskbroker_jobs_dead_lettered_total", "taskbroker_job_run_seconds_bucket",
                 "taskbroker_job_queue_wait_seconds_bucket", "taskbroker_queue_depth",
                 "taskbroker_workers", "taskbroker_http_requests_total",
                 "taskbroker_data_service_request_seconds_bucket"):
        assert name in used, name


def test_the_name_check_has_teeth() -> None:
    assert _metric_names('sum(rate(taskbroker_jobs_finished_total{task="echo"}[5m]))') == {
        "taskbroker_jobs_finished_total"}
    assert "taskbroker_jobs_finished_total" not in family_names()


def test_every_panel_reads_the_provisioned_prometheus() -> None:
    [source] = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())[
        "datasources"]
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
    assert source["url"] == "http://prometheus:9090"


def _targets(job: dict[str, Any]) -> list[str]:
    if "static_configs" in job:
        return [t for config in job["static_configs"] for t in config["targets"]]
    return [f"{name}:{config['port']}" for config in job["dns_sd_configs"]
            for name in config["names"]]


def test_prometheus_scrapes_every_metrics_endpoint_of_compose() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: _targets(job) for job in config["scrape_configs"]}
    env = load_compose()["x-backend-env"]
    assert jobs == {
        "api": [f"api:{env['API_PORT']}"],
        "store": [f"store:{env['STORE_PORT']}"],
        "dispatcher": [f"dispatcher:{default_of('DISPATCHER_METRICS_PORT')}"],
        "workers": [f"worker:{default_of('METRICS_PORT')}"],
    }
    services = load_compose()["services"]
    for targets in jobs.values():
        for target in targets:
            assert target.split(":")[0] in services, target
    # What is scraped listens on compose's network, not on the container's loopback.
    assert env["METRICS_HOST"] == "0.0.0.0"


def test_prometheus_and_grafana_run_only_under_the_monitoring_profile() -> None:
    services = load_compose()["services"]
    for name in ("prometheus", "grafana"):
        service = services[name]
        assert service["profiles"] == ["monitoring"], name
        assert all(port.startswith("127.0.0.1:") for port in service["ports"]), name
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for path in (PROMETHEUS, DASHBOARD, PROVISIONING):
        assert "./" + str(path.relative_to(ROOT)) in mounts, path
    for name, service in services.items():
        if name not in ("prometheus", "grafana"):
            assert "profiles" not in service, f"{name} must start with a plain `up`"


@pytest.mark.parametrize("component, port", [("api", 8000), ("store", 8001),
                                             ("dispatcher", 9465), ("workers", 9464)])
def test_pods_tell_prometheus_where_their_metrics_are(component: str, port: int) -> None:
    [deployment] = [d for d in k8s_docs("Deployment") if d["metadata"]["name"] == component]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                           "prometheus.io/path": "/metrics"}
    [configmap] = [d for d in k8s_docs("ConfigMap")
                   if d["metadata"]["name"] == "taskbroker-config"]
    setting = {"dispatcher": "DISPATCHER_METRICS_PORT", "workers": "METRICS_PORT",
               "api": "API_PORT", "store": "STORE_PORT"}[component]
    assert int(configmap["data"][setting]) == port
    ports = [p["containerPort"] for c in deployment["spec"]["template"]["spec"]["containers"]
             for p in c.get("ports", [])]
    assert port in ports


def test_the_operator_example_scrapes_every_component() -> None:
    monitors = {d["kind"]: d for d in k8s_docs() if d["apiVersion"].startswith("monitoring.")}
    assert set(monitors) == {"ServiceMonitor", "PodMonitor"}
    picked = set()
    for monitor in monitors.values():
        [expression] = monitor["spec"]["selector"]["matchExpressions"]
        picked |= set(expression["values"])
    assert picked == {"api", "store", "dispatcher", "workers"}
    path = Path(ROOT / "ops" / "kubernetes" / "examples" / "monitoring.yaml")
    assert path.exists()  # outside the directory `kubectl apply -f ops/kubernetes/` reads
