"""Every setting the code reads is in .env.example, docker-compose.yml (or compose's
secrets volume) and the ConfigMap or Secret, with a value the code accepts, and nothing
there is stale. No secret has a value in any of them."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from backend.settings import setting_names
from tests.ops.settings_files import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    K8S_DIR,
    ROOT,
    VOLUME_SECRETS,
    WITH_SECRETS,
    compose_env,
    default_of,
    field_of,
    interpolate,
    interpolated_names,
    is_secret,
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
    "QUEUE_BACKEND", "SQS_ENDPOINT_URL", "DATA_SERVICE_URL",
    "API_URL", "STORE_HOST", "STORE_PORT", "API_HOST", "API_PORT", "DASHBOARD_PORT", "DATA_DIR",
    "STANDARD_QUEUE_NAME", "DEAD_LETTER_QUEUE_NAME", "QUEUE_VISIBILITY_TIMEOUT",
    "QUEUE_MAX_RECEIVES", "QUEUE_CREATE", "TRUSTED_PROXIES", "METRICS_HOST",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
}
# The dummy AWS keys ElasticMQ accepts: pinned values, and no credential of anyone's.
ELASTICMQ_KEYS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
# Settings that hold credentials belong in the Secret, never in the ConfigMap.
SECRET_SETTINGS = {name for name in SETTINGS if is_secret(name)}
# The secrets that compose takes from its volumes (ops/docker/with-secrets.sh), with the
# settings compose leaves out entirely: REDIS_URL and MONGODB_URL, which must name
# compose's servers with the generated passwords, so neither .env nor a file can move them.
FROM_VOLUME = set(VOLUME_SECRETS.values())
ONLY_FROM_VOLUME = {"REDIS_URL", "MONGODB_URL"}
# Read by no process of compose: ADMIN_PASSWORD by the local run only, TASKBROKER_TOKEN by
# the CLI only (give it with `docker compose exec -e`).
NOT_IN_COMPOSE = {"ADMIN_PASSWORD", "TASKBROKER_TOKEN"}
# Where compose's default differs from the code's (which suits the one-machine run): the
# session cookie is Secure (see docker-compose.yml's header for plain http on localhost).
COMPOSE_DEFAULTS = {"AUTH_COOKIE_SECURE": True}


def _compose_value(name: str) -> str:
    """A setting's raw value in compose: the shared anchor, else the services that list it
    (all of them alike)."""
    env = load_compose()["x-backend-env"]
    if name in env:
        return str(env[name])
    values = {str(compose_env(s)[name]) for s in BACKEND_SERVICES if name in compose_env(s)}
    assert len(values) == 1, (name, values)
    return values.pop()


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
    listed = {name for service in BACKEND_SERVICES for name in compose_env(service)}
    found = listed | ONLY_FROM_VOLUME | NOT_IN_COMPOSE
    assert found == SETTINGS, _diff(found)
    assert not listed & (ONLY_FROM_VOLUME | NOT_IN_COMPOSE)
    # The anchor every backend service shares holds no secret: each service lists its own.
    assert not {name for name in load_compose()["x-backend-env"] if is_secret(name)}


def test_with_secrets_exports_the_settings_compose_leaves_to_the_volume() -> None:
    # The entrypoint's file -> variable pairs are the ones these tests assume.
    script = WITH_SECRETS.read_text()
    listed = re.search(r"for pair in (.*?); do", script, re.S)
    assert listed, script
    pairs = dict(pair.split(":") for pair in listed.group(1).replace("\\", " ").split())
    assert pairs == VOLUME_SECRETS
    assert FROM_VOLUME <= SECRET_SETTINGS


def test_every_backend_service_gets_the_whole_environment_and_no_env_file() -> None:
    compose = load_compose()
    for name in BACKEND_SERVICES:
        service = compose["services"][name]
        shared = compose["x-backend-env"]
        env = compose_env(name)
        assert {k: v for k, v in env.items() if k in shared} == shared, name
        # Beyond the shared settings, a service lists only secrets (its own).
        assert all(is_secret(k) for k in set(env) - set(shared)), name
        # .env reaches the containers only through x-backend-env's interpolation, so that
        # a copied .env.example (REDIS_URL=redis://127.0.0.1:6380/0, ...) can neither move a
        # pinned address nor shadow the secrets volume. Compose runs without a .env.
        assert "env_file" not in service, name


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_compose_value_is_pinned_or_defaults_to_the_code_default(name: str) -> None:
    if name in ONLY_FROM_VOLUME | NOT_IN_COMPOSE:
        assert all(name not in compose_env(s) for s in BACKEND_SERVICES)
        return
    raw = _compose_value(name)
    if name in COMPOSE_DEFAULTS:
        assert interpolated_names(raw) == [name], raw
        assert parse_setting(name, interpolate(raw, {})) == COMPOSE_DEFAULTS[name]
    elif name in FROM_VOLUME:
        # Empty unless .env or the shell sets it; empty means "from the volume".
        assert raw == f"${{{name}:-}}", f"{name}: from .env, else the secrets volume"
    elif name in COMPOSE_PINNED:
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
    for name in ("SQS_ENDPOINT_URL", "DATA_SERVICE_URL", "API_URL"):
        host = urlsplit(env[name]).hostname
        assert host in compose["services"], f"{name}={env[name]}: no service {host!r}"
    assert urlsplit(env["DATA_SERVICE_URL"]).port == int(env["STORE_PORT"])
    assert urlsplit(env["API_URL"]).port == int(env["API_PORT"])


@pytest.mark.parametrize("dotenv", ["absent", "copied from .env.example"])
def test_compose_environment_is_valid_settings_with_or_without_dotenv(dotenv: str) -> None:
    values = {} if dotenv == "absent" else {
        k: v for k, (v, _) in parse_env_file(ENV_EXAMPLE.read_text()).items()}
    for service in BACKEND_SERVICES:
        env = {k: interpolate(str(v), values) for k, v in compose_env(service).items()}
        for name, raw in env.items():
            parse_setting(name, raw)
        # .env.example's one-machine addresses never leak into the containers.
        assert env["QUEUE_BACKEND"] == "sqs"
        assert "REDIS_URL" not in env and "MONGODB_URL" not in env
        # .env.example sets no secret: each stays empty, and with-secrets takes the volume's.
        for name in (FROM_VOLUME - ONLY_FROM_VOLUME) & set(env):
            assert env[name] == "", name


def test_a_secret_set_in_dotenv_wins_over_the_volume() -> None:
    dotenv = {"AUTH_SECRET": "mine", "DATA_SERVICE_TOKEN": "also-mine"}
    env = {k: interpolate(str(v), dotenv) for k, v in compose_env("api").items()}
    assert env["AUTH_SECRET"] == "mine" and env["DATA_SERVICE_TOKEN"] == "also-mine"
    # ...for the services that use it only: .env's session key never reaches a worker.
    worker = {k: interpolate(str(v), dotenv) for k, v in compose_env("worker").items()}
    assert "AUTH_SECRET" not in worker and "DATA_SERVICE_TOKEN" not in worker
    assert "also-mine" not in worker.values() and "mine" not in worker.values()


# --- no secret value committed --------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SECRET_SETTINGS))
def test_compose_commits_no_secret_value(name: str) -> None:
    for service in BACKEND_SERVICES:
        env = compose_env(service)
        if name not in env:
            continue
        assert name not in ONLY_FROM_VOLUME | NOT_IN_COMPOSE, (service, name)
        if name in ELASTICMQ_KEYS:
            assert env[name] == ELASTICMQ_KEYS[name]
        else:
            assert env[name] == f"${{{name}:-}}", f"{name} must not have a value in compose"


def test_no_credential_anywhere_in_the_compose_file() -> None:
    compose = load_compose()
    for text in _strings(compose):
        # No URL with a password (compose's Redis URL only exists in the volume).
        assert not re.search(r"://[^/@\s]*:[^/@\s$]+@", text), text
        # A secret setting is only ever set through interpolation (never NAME=value).
        for name in SECRET_SETTINGS - set(ELASTICMQ_KEYS):
            assert not re.search(rf"\b{name}=\S", text), text
    for service in compose["services"].values():
        environment = service.get("environment", {})
        assert isinstance(environment, dict)
        for name, value in environment.items():
            if is_secret(name) and name not in ELASTICMQ_KEYS:
                assert interpolate(str(value), {}) == "", name


# Random strings as secrets are made (32+ URL-safe or hex characters mixing letters and
# digits): one of these in a committed deployment file is a leaked secret.
_GENERATED_LOOKING = re.compile(r"(?<![\w/.-])(?=[\w-]*\d)(?=[\w-]*[a-z])(?=[\w-]*[A-Z])"
                                r"[A-Za-z0-9_-]{32,}")


def _deployment_files() -> list[Path]:
    files = [COMPOSE_FILE, ROOT / ".env.example"]
    files += [p for p in (ROOT / "ops").rglob("*") if p.is_file()]
    return sorted(files)


@pytest.mark.parametrize("path", _deployment_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_generated_secret_is_committed(path: Path) -> None:
    found = _GENERATED_LOOKING.findall(path.read_text(errors="replace"))
    assert not found, f"{path.relative_to(ROOT)} holds what looks like a secret: {found}"


def test_the_secret_detector_has_teeth() -> None:
    assert _GENERATED_LOOKING.search(f"AUTH_SECRET: {secrets.token_urlsafe(32)}A1a")
    assert not _GENERATED_LOOKING.search("DISPATCHER_EXIT_AFTER_RECEIVE_AND_THEN_SOME")


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
    for name, value in secret.items():
        if name in {"MONGODB_URL", "REDIS_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}:
            assert "PLACEHOLDER" in value or "PASSWORD" in value, (name, value)
        else:
            # Empty: the data service, the kernel and rq-dashboard refuse to start without
            # their secret, so the template cannot run with a value everyone knows (and
            # ADMIN_PASSWORD / TASKBROKER_TOKEN are not read in the cluster).
            assert value == "", name
    # Redis must require a password: the URL template carries one.
    assert urlsplit(secret["REDIS_URL"]).password
    # The template is outside the directory `kubectl apply -f ops/kubernetes/` reads.
    [path] = [p for p in K8S_DIR.rglob("secret*.yaml")]
    assert path.parent != K8S_DIR


def test_the_shared_secrets_have_no_usable_default() -> None:
    # What makes the empty template values above fail closed: the code's default is empty
    # too, and each process refuses to start on an empty one.
    for name in ("DATA_SERVICE_TOKEN", "AUTH_SECRET", "DASHBOARD_PASSWORD"):
        assert default_of(name) == "", name


def test_configmap_holds_no_secret_and_says_so() -> None:
    assert not {name for name in _configmap() if is_secret(name)}


def test_configmap_sets_what_a_cluster_behind_tls_needs() -> None:
    configmap = _configmap()
    # The Ingress serves HTTPS: the session cookie must be sent over TLS only.
    assert parse_setting("AUTH_COOKIE_SECURE", configmap["AUTH_COOKIE_SECURE"]) is True
    # The web app is same-origin (nginx proxies /api): no cross-origin caller by default,
    # and never a wildcard (CORS is credentialed).
    origins = [o.strip() for o in configmap["CORS_ORIGINS"].split(",") if o.strip()]
    assert "*" not in origins and all(o.startswith("https://") for o in origins)
    # OIDC is off until both the issuer and the audience are set.
    assert bool(configmap["AUTH_OIDC_ISSUER"]) == bool(configmap["AUTH_OIDC_AUDIENCE"])


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


def test_every_backend_container_reads_the_configmap_and_its_keys_of_the_secret() -> None:
    secret = _secret()
    for deployment in k8s_docs("Deployment"):
        name = deployment["metadata"]["name"]
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if "/backend:" not in container["image"]:
                continue
            # The whole ConfigMap; never the whole Secret (each process its keys only).
            refs = [{k: v["name"] for k, v in ref.items()} for ref in container["envFrom"]]
            assert refs == [{"configMapRef": "taskbroker-config"}], name
            # Every other setting is one key of the Secret, under its own name: no
            # per-container drift of a non-secret value.
            for entry in container["env"]:
                ref = entry["valueFrom"]["secretKeyRef"]
                assert ref == {"name": "taskbroker-secrets", "key": entry["name"]}, name
                assert entry["name"] in secret and is_secret(entry["name"]), name
