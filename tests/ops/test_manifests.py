"""The Kubernetes manifests: schema-valid (kubernetes-validate --strict, offline), and
shaped the way the deployment needs (probes, limits, non-root, grace, autoscaling, and
NetworkPolicies that admit each component's callers only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.ops.settings_files import K8S_DIR, k8s_docs, load_compose, load_k8s

# The Kubernetes version the manifests are validated against (bundled with
# kubernetes-validate, so the check needs no network).
K8S_VERSION = "1.33.0"
KUBERNETES_VALIDATE = str(Path(sys.executable).parent / "kubernetes-validate")
# kubernetes-validate knows only the built-in kinds; these CRDs get the structural checks below.
CRD_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication"),
             ("monitoring.coreos.com/v1", "ServiceMonitor"),
             ("monitoring.coreos.com/v1", "PodMonitor")}
HTTP_PROBES = {"store": ("/readyz", "/healthz"), "api": ("/readyz", "/healthz"),
               "web": ("/healthz", "/healthz")}
LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component")
# Who opens connections to whom (the brief): the data service is called by the kernel and
# the dispatcher only (no longer by the workers); Redis by the kernel, the dispatcher, the
# workers and rq-dashboard; MongoDB by the data service only. Redis and MongoDB, when run
# in the cluster, also admit their own replicas (and Redis KEDA's operator).
CALLERS = {"store": {"api", "dispatcher"},
           "redis": {"api", "dispatcher", "workers", "rq-dashboard"},
           "mongodb": {"store"}}


def _validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBERNETES_VALIDATE, "--strict", "--kubernetes-version", K8S_VERSION, *map(str, paths)],
        capture_output=True, text=True, timeout=120, check=False)


def _deployments() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in k8s_docs("Deployment")}


def _pod(name: str) -> dict:
    return _deployments()[name]["spec"]["template"]["spec"]


def _configmap() -> dict[str, str]:
    [configmap] = k8s_docs("ConfigMap")
    return configmap["data"]


def test_file_names_let_kubectl_apply_the_directory() -> None:
    names = {p.name for p in K8S_DIR.glob("*.yaml")}
    workloads = {n for n in names if n.endswith(".deployment.yaml")}
    assert workloads == {f"{n}.deployment.yaml" for n in
                         ("store", "api", "dispatcher", "workers", "dashboard", "web")}
    # The policies are applied with the rest (`kubectl apply -f ops/kubernetes/`).
    assert "networkpolicies.yaml" in names


def test_every_manifest_passes_kubernetes_validate_strict() -> None:
    paths = sorted(load_k8s())
    result = _validate(*paths)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    built_in = [(p, d) for p, docs in load_k8s().items() for d in docs
                if (d["apiVersion"], d["kind"]) not in CRD_KINDS]
    for path, doc in built_in:
        line = (f"{path.relative_to(K8S_DIR.parents[1])} passed for resource "
                f"{doc['kind'].lower()}/{doc['metadata']['name']}")
        assert line in output, f"not validated: {line}\n{output}"
    unknown = [line for line in output.splitlines() if "Couldn't find schema" in line]
    assert len(unknown) == sum(1 for _, docs in load_k8s().items() for d in docs
                               if (d["apiVersion"], d["kind"]) in CRD_KINDS), unknown


def test_strict_validation_rejects_a_misspelled_field(tmp_path: Path) -> None:
    # Proves the check above has teeth: a typo that kubectl would silently drop fails.
    broken = tmp_path / "broken.yaml"
    text = (K8S_DIR / "store.deployment.yaml").read_text()
    broken.write_text(text.replace("readinessProbe:", "readinesProbe:", 1))
    result = _validate(broken)
    assert result.returncode != 0
    assert "readinesProbe" in result.stdout + result.stderr


def test_keda_scaled_object_has_the_required_fields() -> None:
    [scaled] = k8s_docs("ScaledObject")
    spec = scaled["spec"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1" and scaled["metadata"]["name"]
    target = spec["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment" and target["name"] in _deployments()
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    auths = {d["metadata"]["name"]: d for d in k8s_docs("TriggerAuthentication")}
    secrets = {d["metadata"]["name"]: d for d in k8s_docs("Secret")}
    assert spec["triggers"]
    for trigger in spec["triggers"]:
        assert trigger["type"] == "redis"
        metadata = trigger["metadata"]
        # The CRD types trigger metadata as a map of strings: a bare 4 is rejected.
        assert all(isinstance(v, str) for v in metadata.values()), metadata
        assert {"address", "listName", "listLength"} <= set(metadata)
        assert int(metadata["listLength"]) > 0
        auth = auths[trigger["authenticationRef"]["name"]]
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets[ref["name"]]["stringData"]


def test_keda_watches_the_rq_queue_of_every_executor() -> None:
    [scaled] = k8s_docs("ScaledObject")
    watched = {t["metadata"]["listName"] for t in scaled["spec"]["triggers"]}
    executors = [e.strip() for e in _configmap()["EXECUTORS"].split(",") if e.strip()]
    assert watched == {f"rq:queue:{e}" for e in executors}


def test_autoscaled_deployments_leave_replicas_to_the_autoscaler() -> None:
    [hpa] = k8s_docs("HorizontalPodAutoscaler")
    [scaled] = k8s_docs("ScaledObject")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "api"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    for name in (hpa["spec"]["scaleTargetRef"]["name"], scaled["spec"]["scaleTargetRef"]["name"]):
        # A fixed `replicas` would fight the autoscaler on every `kubectl apply`.
        assert "replicas" not in _deployments()[name]["spec"], name
    # A CPU utilisation target is a share of the CPU request.
    [container] = _pod("api")["containers"]
    assert container["resources"]["requests"]["cpu"]


@pytest.mark.parametrize("name", sorted(HTTP_PROBES))
def test_http_processes_have_readiness_and_liveness_probes(name: str) -> None:
    [container] = _pod(name)["containers"]
    ready, alive = HTTP_PROBES[name]
    assert container["readinessProbe"]["httpGet"]["path"] == ready
    assert container["livenessProbe"]["httpGet"]["path"] == alive
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["port"] in ports


def test_rq_dashboard_probes_sign_in_like_the_compose_check() -> None:
    # Every page of the dashboard asks for basic auth, which an httpGet probe cannot read
    # from the Secret: the exec probe signs in with the pod's settings (DASHBOARD_USERNAME,
    # DASHBOARD_PASSWORD, DASHBOARD_PORT), as compose's check does (there via with-secrets).
    [container] = _pod("rq-dashboard")["containers"]
    compose = load_compose()["services"]["rq-dashboard"]["healthcheck"]["test"]
    assert compose[:2] == ["CMD", "with-secrets"]
    for probe in ("readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        assert command == compose[2:], probe
        assert command[:2] == ["python", "-c"]
        code = command[2]
        for needed in ("dashboard_username", "dashboard_password", "dashboard_port",
                       "'Authorization': 'Basic '"):
            assert needed in code, (probe, needed)
        assert container[probe]["timeoutSeconds"] >= 5  # a Python start is not free


def test_http_ports_are_the_configured_ones() -> None:
    configmap = _configmap()
    for name, setting in (("store", "STORE_PORT"), ("api", "API_PORT"),
                          ("rq-dashboard", "DASHBOARD_PORT")):
        [container] = _pod(name)["containers"]
        assert container["ports"][0]["containerPort"] == int(configmap[setting]), name


@pytest.mark.parametrize("name", ["dispatcher", "workers"])
def test_queue_processes_have_exec_probes_in_python(name: str) -> None:
    [container] = _pod(name)["containers"]
    probes = [container[p] for p in ("readinessProbe", "livenessProbe") if p in container]
    assert probes
    for probe in probes:
        assert probe["exec"]["command"][:2] == ["python", "-c"]


@pytest.mark.parametrize("name", sorted({"store", "api", "dispatcher", "workers",
                                         "rq-dashboard", "web"}))
def test_every_container_is_non_root_and_bounded(name: str) -> None:
    pod = _pod(name)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        resources = container["resources"]
        for kind in ("cpu", "memory"):
            assert resources["requests"][kind] and resources["limits"][kind], (name, kind)


def test_workers_get_longer_to_stop_than_the_longest_job() -> None:
    configmap = _configmap()
    grace = _pod("workers")["terminationGracePeriodSeconds"]
    assert grace > int(configmap["JOB_TIMEOUT_DEFAULT"])
    assert grace > float(configmap["SHUTDOWN_GRACE"])


def test_services_select_pods_and_name_their_ports() -> None:
    deployments = _deployments()
    for service in k8s_docs("Service"):
        selector = service["spec"]["selector"]
        [target] = [d for d in deployments.values()
                    if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert target["spec"]["selector"]["matchLabels"].items() <= \
            target["spec"]["template"]["metadata"]["labels"].items()
        port_names = {p["name"] for c in target["spec"]["template"]["spec"]["containers"]
                      for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, service["metadata"]["name"]


def test_the_ingress_example_serves_the_web_app_over_https() -> None:
    # HTTPS is what gives browsers HTTP/2 (ingress-nginx negotiates it on TLS hosts) and
    # what the Secure session cookie needs.
    [ingress] = k8s_docs("Ingress")
    spec = ingress["spec"]
    hosts = {rule["host"] for rule in spec["rules"]}
    assert hosts and hosts <= {host for tls in spec["tls"] for host in tls["hosts"]}
    assert all(tls["secretName"] for tls in spec["tls"])
    services = {s["metadata"]["name"]: s for s in k8s_docs("Service")}
    [path] = [p for rule in spec["rules"] for p in rule["http"]["paths"]]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    assert backend["name"] == "web"
    assert backend["port"]["name"] in {p["name"] for p in services["web"]["spec"]["ports"]}
    # The live streams flow through unbuffered, for as long as nginx.conf lets them.
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert _configmap()["AUTH_COOKIE_SECURE"] == "true"


def test_one_backend_image_for_every_python_process() -> None:
    images = {name: _pod(name)["containers"][0]["image"] for name in _deployments()}
    backend = {images[n] for n in ("store", "api", "dispatcher", "workers", "rq-dashboard")}
    assert len(backend) == 1
    assert images["web"] not in backend


# --- NetworkPolicies ------------------------------------------------------------------------

def _policies() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in k8s_docs("NetworkPolicy")}


def _component(selector: dict) -> str:
    """The component a pod selector names; it must name it by both of our labels."""
    labels = selector["matchLabels"]
    assert set(labels) == set(LABELS) and labels[LABELS[0]] == "taskbroker", selector
    assert "matchExpressions" not in selector
    return labels[LABELS[1]]


def _admitted(policy: dict) -> tuple[set[str], list[dict], set[tuple[str, int]]]:
    """(components admitted from this namespace, other peers, (protocol, port)s)."""
    components: set[str] = set()
    others: list[dict] = []
    ports: set[tuple[str, int]] = set()
    for rule in policy["spec"].get("ingress", []):
        for peer in rule["from"]:
            if set(peer) == {"podSelector"}:
                components.add(_component(peer["podSelector"]))
            else:
                others.append(peer)
        ports |= {(p["protocol"], p["port"]) for p in rule["ports"]}
    return components, others, ports


def _port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port, url
    return port


def test_every_policy_isolates_ingress_only_and_selects_our_pods() -> None:
    deployments = {_component(d["spec"]["selector"]): d for d in _deployments().values()}
    policies = _policies()
    assert set(policies) == {"store", "rq-dashboard", "redis", "mongodb", "workers",
                             "dispatcher"}
    for name, policy in policies.items():
        # Egress stays open: an Egress type with no egress rule would cut DNS and the rest.
        assert policy["spec"]["policyTypes"] == ["Ingress"], name
        selected = _component(policy["spec"]["podSelector"])
        assert selected == name
        if name in deployments:
            # It selects exactly that Deployment's pods.
            labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
            assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        for component in _admitted(policy)[0]:
            # Every admitted caller is one of ours (or the selected pods' own replicas).
            assert component in deployments or component == selected, (name, component)


def test_only_the_kernel_and_the_dispatcher_reach_the_data_service() -> None:
    components, others, ports = _admitted(_policies()["store"])
    assert components == CALLERS["store"]
    assert "workers" not in components and "web" not in components
    assert not others, "nothing from outside the namespace"
    [container] = _pod("store")["containers"]
    store_port = container["ports"][0]["containerPort"]
    assert ports == {("TCP", store_port)}
    assert store_port == int(_configmap()["STORE_PORT"]) == _port_of(
        _configmap()["DATA_SERVICE_URL"])


def test_no_pod_reaches_rq_dashboard() -> None:
    policy = _policies()["rq-dashboard"]
    # Isolated for ingress with no rule: only the node (probes) and port-forward get in.
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"].get("ingress", []) == []


def _secret_template() -> dict[str, str]:
    [secret] = [d for d in k8s_docs("Secret") if d["metadata"]["name"] == "taskbroker-secrets"]
    return secret["stringData"]


def test_redis_in_the_cluster_admits_only_its_clients() -> None:
    components, others, ports = _admitted(_policies()["redis"])
    assert components - {"redis"} == CALLERS["redis"]
    assert not components & {"store", "web"}
    # KEDA's redis scaler reads the queues' length from its own namespace.
    [keda] = others
    assert keda["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "keda"}
    assert keda["podSelector"]["matchLabels"] == {"app": "keda-operator"}
    assert ports == {("TCP", _port_of(_secret_template()["REDIS_URL"]))}
    [scaled] = k8s_docs("ScaledObject")
    for trigger in scaled["spec"]["triggers"]:
        assert ("TCP", int(trigger["metadata"]["address"].rsplit(":", 1)[1])) in ports


def test_mongodb_in_the_cluster_admits_only_the_data_service() -> None:
    components, others, ports = _admitted(_policies()["mongodb"])
    assert components - {"mongodb"} == CALLERS["mongodb"]
    assert not others
    assert ports == {("TCP", _port_of(_secret_template()["MONGODB_URL"]))}


@pytest.mark.parametrize("component, setting", [("workers", "METRICS_PORT"),
                                                ("dispatcher", "DISPATCHER_METRICS_PORT")])
def test_only_prometheus_reaches_the_metrics_of_the_workers_and_the_dispatcher(
        component: str, setting: str) -> None:
    # They serve nothing but /metrics (9464, 9465): no pod of this namespace may connect
    # (a compromised one would read every queue and task name), only the monitoring one.
    components, others, ports = _admitted(_policies()[component])
    assert components == set()
    assert others == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]
    port = int(_configmap()[setting])
    assert ports == {("TCP", port)}
    [container] = _pod(component)["containers"]
    assert [p["containerPort"] for p in container["ports"]] == [port]
