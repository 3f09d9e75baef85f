"""The Dockerfiles: multi-stage, non-root, health-checked, and fed a context that holds
what they copy (no Docker engine needed: the files are parsed)."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

from backend.api.headers import SECURITY_HEADERS
from backend.settings import setting_names
from tests.ops.settings_files import (
    DOCKER_DIR,
    MAKE_SECRETS,
    ROOT,
    SECRETS_MOUNT,
    WITH_SECRETS,
    dockerfile_instructions,
    load_make_secrets,
)

BACKEND = DOCKER_DIR / "Dockerfile.backend"
WEB = DOCKER_DIR / "Dockerfile.web"


def _args(path: Path) -> dict[str, str]:
    return dict(a.split("=", 1) for i, a in dockerfile_instructions(path)
                if i == "ARG" and "=" in a)


def _stages(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """(base image, instructions) of each stage, ARG defaults substituted."""
    args = _args(path)
    stages: list[tuple[str, list[tuple[str, str]]]] = []
    for instruction, arguments in dockerfile_instructions(path):
        if instruction == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], arguments.split()[0])
            stages.append((image, []))
        elif stages:
            stages[-1][1].append((instruction, arguments))
    return stages


def _ignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last match wins)."""
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").removeprefix("**/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes + parts):
            ignored = not negate
    return ignored


def test_backend_image_is_multi_stage_with_the_venv_on_python_slim() -> None:
    stages = _stages(BACKEND)
    assert len(stages) >= 2
    builder, runtime = stages[0], stages[-1]
    assert runtime[0] == "python:3.11-slim"
    assert any(i == "RUN" and "pip install" in a for i, a in builder[1])
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime[1]
    # Nothing is installed with pip in the runtime stage: it only receives the venv.
    assert not any(i == "RUN" and "pip " in a for i, a in runtime[1])


def test_images_run_as_a_non_root_user() -> None:
    for path in (BACKEND, WEB):
        users = [a for i, a in _stages(path)[-1][1] if i == "USER"]
        assert users, path.name
        uid = users[-1].split(":")[0]
        assert uid.isdigit() and int(uid) != 0, path.name


def test_backend_healthcheck_asks_the_kernel_healthz() -> None:
    [check] = [a for i, a in _stages(BACKEND)[-1][1] if i == "HEALTHCHECK"]
    argv = json.loads(check[check.index("CMD") + 3:].strip())
    assert argv[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8000/healthz" in argv[2]


def test_backend_image_sets_only_settings_and_python_variables() -> None:
    names = set()
    for instruction, arguments in _stages(BACKEND)[-1][1]:
        if instruction == "ENV":
            names |= set(re.findall(r"(\w+)=", arguments))
    python_env = {"VIRTUAL_ENV", "PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
    assert names - python_env <= set(setting_names())
    assert {"STORE_HOST", "API_HOST"} <= names


def test_backend_image_installs_the_entrypoint_and_the_secrets_maker() -> None:
    runtime = _stages(BACKEND)[-1][1]
    copies = [a for i, a in runtime if i == "COPY"]
    for source, command in ((WITH_SECRETS, "with-secrets"), (MAKE_SECRETS, "make-secrets")):
        # Executable whatever mode the checkout gave the file (BuildKit's --chmod).
        line = f"--chmod=0755 {source.relative_to(ROOT)} /usr/local/bin/{command}"
        assert line in copies, copies
    # The entrypoint is a POSIX sh script: the slim image has dash, not bash.
    assert WITH_SECRETS.read_text().startswith("#!/bin/sh\n")


def test_backend_image_gives_the_secrets_mount_point_to_its_user() -> None:
    # A new named volume takes the owner and mode of the image's directory it is mounted
    # on: so the non-root `secrets` service can write it, and only that user read it.
    runtime = _stages(BACKEND)[-1][1]
    [user] = [a for i, a in runtime if i == "USER"]
    runs = " && ".join(a for i, a in runtime if i == "RUN")
    assert f"mkdir -p {SECRETS_MOUNT}" in runs
    assert f"chown {user} {SECRETS_MOUNT}" in runs
    assert f"chmod 0700 {SECRETS_MOUNT}" in runs
    # Each role's volume is mounted in the one-shot at /run/taskbroker-roles/<role>: the
    # image gives each such directory to its user too (files 0640 there, dirs 0750).
    loop = re.search(r"for role in ([^;]+); do(.*?)done", runs, re.S)
    assert loop, runs
    assert set(loop.group(1).split()) == set(load_make_secrets().ROLES)
    body = loop.group(2)
    for step in ('mkdir -p "/run/taskbroker-roles/$role"',
                 f'chown {user} "/run/taskbroker-roles/$role"',
                 'chmod 0750 "/run/taskbroker-roles/$role"'):
        assert step in body, step


def test_web_image_builds_with_node_20_and_serves_with_unprivileged_nginx() -> None:
    stages = _stages(WEB)
    build, runtime = stages[0], stages[-1]
    assert build[0].startswith("node:20")
    runs = " && ".join(a for i, a in build[1] if i == "RUN")
    assert "npm ci" in runs and runs.index("npm ci") < runs.index("npm run build")
    assert runtime[0].startswith("nginxinc/nginx-unprivileged:")
    copies = [a for i, a in runtime[1] if i == "COPY"]
    assert "--from=build /src/dist/frontend/browser /usr/share/nginx/html" in copies
    assert "ops/docker/nginx.conf /etc/nginx/conf.d/default.conf" in copies
    assert any(i == "HEALTHCHECK" for i, _ in runtime[1])


def test_nginx_serves_the_spa_with_fallback_and_proxies_api() -> None:
    nginx = (DOCKER_DIR / "nginx.conf").read_text()
    assert re.search(r"listen 8080;", nginx)  # the unprivileged image cannot bind 80
    assert "try_files $uri $uri/ /index.html;" in nginx
    api = re.search(r"location /api/ \{(.*?)\}", nginx, re.S)
    assert api and "proxy_pass http://kernel;" in api.group(1)
    # The live job stream is server-sent events: buffering would hold them back.
    assert "proxy_buffering off;" in api.group(1)


def _locations(nginx: str) -> dict[str, str]:
    """``location`` argument -> its body (nginx.conf's locations hold no nested blocks)."""
    return {m.group(1).strip(): m.group(2)
            for m in re.finditer(r"^    location ([^{\n]+)\{(.*?)\n    \}", nginx, re.S | re.M)}


def test_nginx_sends_the_kernels_security_headers_with_the_web_app() -> None:
    # The same CSP, frame and sniffing rules whether the kernel or nginx serves the app
    # (the sign-in page must not be framed). Each static location repeats them: nginx
    # ignores inherited add_header lines in a location that has its own.
    locations = _locations((DOCKER_DIR / "nginx.conf").read_text())
    static = [loc for loc in locations if loc not in {"= /healthz", "/api/"}]
    assert set(static) == {"/", r"~* \.(?:js|css)$"}, sorted(locations)
    for location in static:
        headers = dict(re.findall(r'add_header ([\w-]+) "([^"]*)" always;', locations[location]))
        assert headers == SECURITY_HEADERS, location
    # /api/ answers come with the kernel's own headers: added twice they would clash.
    assert "add_header" not in locations["/api/"]


def test_build_context_holds_what_the_dockerfiles_copy_and_no_secrets() -> None:
    for path in (BACKEND, WEB):
        for instruction, arguments in dockerfile_instructions(path):
            if instruction != "COPY" or arguments.startswith("--from"):
                continue
            *sources, _ = arguments.split()
            for source in sources:
                if source.startswith("--"):
                    continue
                source = source.rstrip("/").rstrip("*")
                assert (ROOT / source).exists() or source == "README.md", source
                assert not _ignored(source), f"{path.name} copies {source}, .dockerignore drops it"
    for private in (".env", ".venv", ".git", "frontend/node_modules", "frontend/dist", ".data"):
        assert _ignored(private), private
    assert not _ignored("backend/settings.py")
