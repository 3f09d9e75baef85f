"""Every setting the code reads is in .env.example, docker-compose.yml and the ConfigMap or
Secret, with a value the code accepts, and nothing there is stale."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from backend.settings import setting_names
from tests.ops.settings_files import (
    ENV_EXAMPLE,
    K8S_DIR,
    default_of,
    field_of,
    interpolate,
    interpolated_names,
    k8s_docs,
    load_compose,
    parse_env_file,
    parse_setting,
)

SETTINGS = set(setting_names())
BACKEND_SERVICES = ["store", "api", "dispatcher", "worker", "rq-dashboard"]

# Compose pins these instead of taking them from .env: the addresses of compose's own
# services, what containers need (bind every interface, /tmp is the only writable place),
# the queue layout ElasticMQ creates from ops/docker/elasticmq.conf, and dummy AWS keys so
# real ones in .env never reach ElasticMQ.
COMPOSE_PINNED = {
    "MONGODB_URL", "REDIS_URL", "QUEUE_BACKEND", "SQS_ENDPOINT_URL", "DATA_SERVICE_URL",
    "API_URL", "STORE_HOST", "STORE_PORT", "API_HOST", "API_PORT", "DASHBOARD_PORT", "DATA_DIR",
    "STANDARD_QUEUE_NAME", "DEAD_LETTER_QUEUE_NAME", "QUEUE_VISIBILITY_TIMEOUT",
    "QUEUE_MAX_RECEIVES", "QUEUE_CREATE",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
}
# Settings that hold credentials belong in the Secret, never in the ConfigMap.
SECRET_SETTINGS = {"MONGODB_URL", "REDIS_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def _diff(found: set[str]) -> str:
    return f"missing: {sorted(SETTINGS - found)}; not read by the code: {sorted(found - SETTINGS)}"


# --- .env.example ---------------------------------------------------------------------------

def test_env_example_lists_every_setting_and_nothing_else() -> None:
    entries = parse_env_file(ENV_EXAMPLE.read_text())
    assert set(entries) == SETTINGS, _diff(set(entries)) + (
        " (python -m tests.ops.settings_files renders a fresh .env.example)")


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_env_example_value_is_the_code_default_and_comment_its_description(name: str) -> None:
    value, comment = parse_env_file(ENV_EXAMPLE.read_text())[name]
    assert parse_setting(name, value) == default_of(name)
    cls, field = field_of(name)
    assert comment == cls.model_fields[field].description


def test_env_example_holds_no_real_credentials() -> None:
    entries = parse_env_file(ENV_EXAMPLE.read_text())
    assert entries["AWS_ACCESS_KEY_ID"][0] == "local"
    assert entries["AWS_SECRET_ACCESS_KEY"][0] == "local"
    for name in ("MONGODB_URL", "REDIS_URL"):
        assert urlsplit(entries[name][0]).password is None, name


# --- docker-compose.yml ---------------------------------------------------------------------

def test_compose_environment_lists_every_setting_and_nothing_else() -> None:
    env = load_compose()["x-backend-env"]
    assert set(env) == SETTINGS, _diff(set(env))


def test_every_backend_service_gets_the_whole_environment_and_an_optional_env_file() -> None:
    compose = load_compose()
    for name in BACKEND_SERVICES:
        service = compose["services"][name]
        assert service["environment"] == compose["x-backend-env"], name
        # `cp .env.example .env` is optional: compose must start without the file.
        assert service["env_file"] == [{"path": ".env", "required": False}], name


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_compose_value_is_pinned_or_defaults_to_the_code_default(name: str) -> None:
    raw = str(load_compose()["x-backend-env"][name])
    if name in COMPOSE_PINNED:
        assert interpolated_names(raw) == [], f"{name} is pinned in compose: no ${{...}}"
        parse_setting(name, raw)
    else:
        # ${NAME:-default}: .env / the shell wins, else the code's default.
        assert interpolated_names(raw) == [name], f"{name} should read ${{{name}:-...}}"
        assert raw.startswith(f"${{{name}:-") and raw.endswith("}"), raw
        assert parse_setting(name, interpolate(raw, {})) == default_of(name)


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in _strings(key) + _strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def test_compose_interpolates_no_variable_that_is_not_a_setting() -> None:
    names = {name for text in _strings(load_compose()) for name in interpolated_names(text)}
    assert names <= SETTINGS, f"undocumented compose variables: {sorted(names - SETTINGS)}"


def test_compose_pins_reach_compose_services() -> None:
    compose = load_compose()
    env = compose["x-backend-env"]
    for name in ("MONGODB_URL", "REDIS_URL", "SQS_ENDPOINT_URL", "DATA_SERVICE_URL", "API_URL"):
        host = urlsplit(env[name]).hostname
        assert host in compose["services"], f"{name}={env[name]}: no service {host!r}"
    assert urlsplit(env["DATA_SERVICE_URL"]).port == int(env["STORE_PORT"])
    assert urlsplit(env["API_URL"]).port == int(env["API_PORT"])


@pytest.mark.parametrize("dotenv", ["absent", "copied from .env.example"])
def test_compose_environment_is_valid_settings_with_or_without_dotenv(dotenv: str) -> None:
    values = {} if dotenv == "absent" else {
        k: v for k, (v, _) in parse_env_file(ENV_EXAMPLE.read_text()).items()}
    env = {k: interpolate(str(v), values) for k, v in load_compose()["x-backend-env"].items()}
    for name, raw in env.items():
        parse_setting(name, raw)
    # .env.example's one-machine addresses never leak into the containers.
    assert env["MONGODB_URL"] == "mongodb://mongo:27017"
    assert env["QUEUE_BACKEND"] == "sqs"


# --- Kubernetes ConfigMap and Secret --------------------------------------------------------

def _configmap() -> dict[str, str]:
    [configmap] = [d for d in k8s_docs("ConfigMap") if d["metadata"]["name"] == "taskbroker-config"]
    return configmap["data"]


def _secret() -> dict[str, str]:
    [secret] = [d for d in k8s_docs("Secret") if d["metadata"]["name"] == "taskbroker-secrets"]
    return secret["stringData"]


def test_configmap_and_secret_hold_every_setting_once_and_nothing_else() -> None:
    configmap, secret = _configmap(), _secret()
    assert not set(configmap) & set(secret), "a setting in both the ConfigMap and the Secret"
    assert set(configmap) | set(secret) == SETTINGS, _diff(set(configmap) | set(secret))


def test_credentials_are_in_the_secret_template_as_placeholders() -> None:
    secret = _secret()
    assert set(secret) == SECRET_SETTINGS
    assert all("PLACEHOLDER" in v or "PASSWORD" in v for v in secret.values()), secret
    # The template is outside the directory `kubectl apply -f ops/kubernetes/` reads.
    [path] = [p for p in K8S_DIR.rglob("secret*.yaml")]
    assert path.parent != K8S_DIR


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_k8s_value_is_a_string_the_code_accepts(name: str) -> None:
    values = {**_configmap(), **_secret()}
    assert isinstance(values[name], str), f"{name}: ConfigMap/Secret values must be strings"
    parse_setting(name, values[name])


def test_k8s_urls_name_the_services() -> None:
    configmap = _configmap()
    services = {d["metadata"]["name"]: d for d in k8s_docs("Service")}
    for name, port_setting in (("DATA_SERVICE_URL", "STORE_PORT"), ("API_URL", "API_PORT")):
        url = urlsplit(configmap[name])
        assert url.hostname in services, f"{name}: no Service {url.hostname!r}"
        ports = [p["port"] for p in services[url.hostname]["spec"]["ports"]]
        assert url.port in ports and url.port == int(configmap[port_setting])


def test_every_backend_container_reads_the_configmap_and_the_secret() -> None:
    for deployment in k8s_docs("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if "/backend:" not in container["image"]:
                continue
            refs = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in container["envFrom"]}
            assert refs == {"configMapRef": "taskbroker-config",
                            "secretRef": "taskbroker-secrets"}, deployment["metadata"]["name"]
            # Every setting comes from those two; no per-container drift.
            assert "env" not in container, deployment["metadata"]["name"]
