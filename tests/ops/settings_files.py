"""Readers of the deployment files' settings, shared by the ops tests.

Run ``python -m tests.ops.settings_files`` to print a fresh ``.env.example`` rendered from
``backend/settings.py`` (every field, its description as the comment, its default as the
value), e.g. after adding a setting; ``python -m tests.ops.settings_files --docs`` prints the
tables of ``docs/settings.md`` (one per settings class) the same way.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from backend.settings import SETTINGS_CLASSES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SETTINGS_DOC = ROOT / "docs" / "settings.md"
K8S_DIR = ROOT / "ops" / "kubernetes"
DOCKER_DIR = ROOT / "ops" / "docker"
# The backend image's entrypoint (under tini) and docker-compose.yml's one-shot `secrets`.
WITH_SECRETS = DOCKER_DIR / "with-secrets.sh"
MAKE_SECRETS = DOCKER_DIR / "make-secrets.py"
# Where compose mounts the secrets (the one-shot: all; a service: its role's volume), and
# what with-secrets exports from there: file -> setting.
SECRETS_MOUNT = "/run/taskbroker"
VOLUME_SECRETS = {
    "redis_url": "REDIS_URL",
    "mongodb_url": "MONGODB_URL",
    "data_service_token": "DATA_SERVICE_TOKEN",
    "auth_secret": "AUTH_SECRET",
    "dashboard_password": "DASHBOARD_PASSWORD",
    "webhook_secret": "WEBHOOK_SECRET",
    "metrics_token": "METRICS_TOKEN",
}
# The backend processes under their names in the Procfile
# (backend.local.supervisor.PROCESS_SECRETS), docker-compose.yml and ops/kubernetes/.
PROCESSES = {  # Procfile: (compose service, Kubernetes Deployment)
    "store": ("store", "store"),
    "api": ("api", "api"),
    "dispatcher": ("dispatcher", "dispatcher"),
    "workers": ("worker", "workers"),
    "dashboard": ("rq-dashboard", "rq-dashboard"),
}
# Settings that hold credentials: the URLs that may carry a password, the AWS keys, and
# every text setting with PASSWORD, TOKEN or SECRET in its name (AUTH_API_TOKEN_TTL is a
# number). They belong in the Kubernetes Secret (never the ConfigMap) and never have a
# value in docker-compose.yml.
_SECRET_WORDS = re.compile(r"PASSWORD|TOKEN|SECRET")
_CREDENTIAL_SETTINGS = {"MONGODB_URL", "REDIS_URL", "AWS_ACCESS_KEY_ID"}

# Compose interpolation: ${NAME}, ${NAME:-default}, ${NAME-default}.
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


def is_secret(name: str) -> bool:
    if name in _CREDENTIAL_SETTINGS:
        return True
    if _SECRET_WORDS.search(name) is None:
        return False
    try:
        cls, field = field_of(name)
    except KeyError:
        return True  # not a setting of ours (e.g. an image's own PASSWORD variable)
    return cls.model_fields[field].annotation is str


def field_of(name: str) -> tuple[type[BaseSettings], str]:
    """The settings class and field name behind an environment variable."""
    for cls in SETTINGS_CLASSES:
        if name.lower() in cls.model_fields:
            return cls, name.lower()
    raise KeyError(name)


def render_value(value: Any) -> str:
    """A default as it is written in an env file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_setting(name: str, raw: str) -> Any:
    """``raw`` validated as the code validates the environment variable ``name``."""
    cls, field = field_of(name)
    # _env_file=None: a developer's own .env must not leak into the check.
    return getattr(cls(_env_file=None, **{field: raw}), field)


def default_of(name: str) -> Any:
    cls, field = field_of(name)
    return cls.model_fields[field].default


def render_env_example() -> str:
    """The ``.env.example`` that documents every setting with its default."""
    lines = [
        "# Settings of every process (backend/settings.py); the processes read them from the",
        "# environment or from a .env file in their working directory.",
        "# Every value below is the code's default, which works on one machine (`make run`).",
        "# `cp .env.example .env` and edit. docker compose reads .env too, but pins the",
        "# addresses of its own services (see docker-compose.yml, x-backend-env).",
        "# No real secrets here: the AWS keys are placeholders that ElasticMQ and moto accept.",
    ]
    for cls in SETTINGS_CLASSES:
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        lines += ["", f"# --- {cls.__name__}: {doc}"]
        for field, info in cls.model_fields.items():
            lines.append(f"# {info.description}")
            lines.append(f"{field.upper()}={render_value(info.default)}")
    return "\n".join(lines) + "\n"


SETTINGS_TABLE_HEADER = "| setting | default | meaning |"


def render_default(value: Any) -> str:
    """A default as the settings reference shows it: as written in an env file, in code."""
    rendered = render_value(value)
    return f"`{rendered}`" if rendered else "empty"


def render_settings_tables() -> str:
    """The tables of docs/settings.md: one per settings class, headed by its docstring."""
    parts = []
    for cls in SETTINGS_CLASSES:
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        rows = [f"### {cls.__name__}", "", doc, "",
                SETTINGS_TABLE_HEADER, "|---|---|---|"]
        for field, info in cls.model_fields.items():
            rows.append(f"| `{field.upper()}` | {render_default(info.default)} | "
                        f"{info.description} |")
        parts.append("\n".join(rows))
    return "\n\n".join(parts) + "\n"


def parse_settings_tables(text: str) -> list[tuple[str, str, str]]:
    """``(name, default as shown, meaning)`` of every row of every settings table in a
    markdown text, in order."""
    rows = []
    inside = False
    for line in text.splitlines():
        if line.strip() == SETTINGS_TABLE_HEADER:
            inside = True
            continue
        if inside and line.startswith("|---"):
            continue
        if inside and line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            assert len(cells) == 3, f"not a settings row: {line!r}"
            rows.append((cells[0].strip("`"), cells[1], cells[2]))
            continue
        inside = False
    return rows


def parse_env_file(text: str) -> dict[str, tuple[str, str]]:
    """``NAME -> (value, comment line just above)`` of a dotenv file."""
    entries: dict[str, tuple[str, str]] = {}
    previous = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            name, sep, value = stripped.partition("=")
            assert sep, f"not NAME=value: {line!r}"
            assert name not in entries, f"{name} is set twice"
            entries[name.strip()] = (value.strip(), previous)
        previous = stripped.removeprefix("#").strip() if stripped.startswith("#") else ""
    return entries


# The C loader when PyYAML has it: the tests read the same files many times.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def load_compose() -> dict[str, Any]:
    """docker-compose.yml, parsed once per test run (callers must not mutate it)."""
    return yaml.load(COMPOSE_FILE.read_text(), Loader=_Loader)


def compose_env(service: str) -> dict[str, Any]:
    """The environment of one compose service (its anchor merged in)."""
    return dict(load_compose()["services"][service].get("environment") or {})


def load_make_secrets() -> Any:
    """ops/docker/make-secrets.py as a module (its name has a dash)."""
    spec = importlib.util.spec_from_file_location("make_secrets", MAKE_SECRETS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation of one value (``$$`` is a literal ``$``)."""

    def replace(match: re.Match[str]) -> str:
        name, op, default = match["name"], match["op"], match["default"] or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return _INTERPOLATION.sub(replace, value).replace("$$", "$")


def interpolated_names(value: str) -> list[str]:
    return [m["name"] for m in _INTERPOLATION.finditer(value)]


@cache
def load_k8s() -> dict[Path, list[dict[str, Any]]]:
    """Every manifest under ops/kubernetes/ (examples included), one list of docs per file,
    parsed once per test run (callers must not mutate it)."""
    return {
        path: [doc for doc in yaml.load_all(path.read_text(), Loader=_Loader) if doc]
        for path in sorted(K8S_DIR.rglob("*.yaml"))
    }


def k8s_docs(kind: str | None = None) -> list[dict[str, Any]]:
    return [doc for docs in load_k8s().values() for doc in docs
            if kind is None or doc["kind"] == kind]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined."""
    joined: list[str] = []
    current = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue  # Docker drops comment lines, even inside a continuation
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    result = []
    for entry in joined:
        instruction, _, args = entry.strip().partition(" ")
        result.append((instruction.upper(), args.strip()))
    return result


def procfile_commands(path: Path) -> dict[str, list[str]]:
    commands = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = shlex.split(command)
    return commands


if __name__ == "__main__":
    import sys

    print(render_settings_tables() if "--docs" in sys.argv[1:] else render_env_example(), end="")
