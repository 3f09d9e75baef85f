"""The compose deployment's secrets: ops/docker/make-secrets.py (the one-shot `secrets`
service) fills a directory once and keeps it; ops/docker/with-secrets.sh (the backend
image's entrypoint) exports it to the process unless a value is already set. Both run
here as they run in the image: the script with Python, the entrypoint with /bin/sh."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.ops.settings_files import (
    MAKE_SECRETS,
    VOLUME_SECRETS,
    WITH_SECRETS,
    parse_setting,
)

GENERATED = ("redis_password", "mongo_password", "data_service_token", "auth_secret",
             "dashboard_password", "webhook_secret", "metrics_token")
PRINT_ENV = [sys.executable, "-c",
             "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
             f"{sorted(VOLUME_SECRETS.values())!r}}}))"]


def _make(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(MAKE_SECRETS), "--dir", str(directory), *args],
                          capture_output=True, text=True, timeout=30, check=False)


def _values(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in directory.iterdir()}


def _clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any of the secrets, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in set(VOLUME_SECRETS.values())}
    return {**env, **extra}


def _exported(directory: Path | None, **env: str) -> dict[str, str | None]:
    extra = {"TASKBROKER_SECRETS_DIR": str(directory)} if directory else {}
    result = subprocess.run(["sh", str(WITH_SECRETS), *PRINT_ENV],
                            env=_clean_env(**extra, **env), capture_output=True, text=True,
                            timeout=30, check=True)
    return json.loads(result.stdout)


# --- make-secrets ---------------------------------------------------------------------------

def test_first_start_writes_random_private_files_and_nothing_else(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    result = _make(directory, "--redis-host", "redis:6379")
    assert result.returncode == 0, result.stderr
    values = _values(directory)
    # The secrets and the URLs built from them: no user, no leftover temporary file.
    assert set(values) == {*GENERATED, "redis_url", "mongodb_url"}
    secrets_ = [values[name] for name in GENERATED]
    assert len(set(secrets_)) == len(secrets_), "every secret is drawn on its own"
    for value in secrets_:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", value), "32 random bytes, URL-safe"
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_it_prints_file_names_never_values(tmp_path: Path) -> None:
    result = _make(tmp_path)
    values = _values(tmp_path)
    assert "generated" in result.stdout
    for value in values.values():
        assert value not in result.stdout + result.stderr


def test_redis_url_carries_the_redis_password_to_the_compose_service(tmp_path: Path) -> None:
    _make(tmp_path, "--redis-host", "redis:6379")
    values = _values(tmp_path)
    url = urlsplit(values["redis_url"])
    assert (url.scheme, url.hostname, url.port, url.path) == ("redis", "redis", 6379, "/0")
    assert url.password == values["redis_password"] and not url.username
    assert parse_setting("REDIS_URL", values["redis_url"]) == values["redis_url"]


def test_mongodb_url_carries_the_root_user_of_compose_mongo(tmp_path: Path) -> None:
    _make(tmp_path, "--mongo-host", "mongo:27017")
    values = _values(tmp_path)
    url = urlsplit(values["mongodb_url"])
    assert (url.scheme, url.hostname, url.port, url.query) == (
        "mongodb", "mongo", 27017, "authSource=admin")
    assert (url.username, url.password) == ("taskbroker", values["mongo_password"])
    assert parse_setting("MONGODB_URL", values["mongodb_url"]) == values["mongodb_url"]


def test_later_starts_keep_every_value(tmp_path: Path) -> None:
    _make(tmp_path)
    first = _values(tmp_path)
    result = _make(tmp_path)
    assert result.returncode == 0 and "generated" not in result.stdout
    assert _values(tmp_path) == first


def test_an_empty_file_is_filled_and_the_url_follows_the_password(tmp_path: Path) -> None:
    _make(tmp_path, "--redis-host", "redis:6379")
    first = _values(tmp_path)
    (tmp_path / "redis_password").write_text("")
    _make(tmp_path, "--redis-host", "redis:6379")
    second = _values(tmp_path)
    assert second["redis_password"] and second["redis_password"] != first["redis_password"]
    assert urlsplit(second["redis_url"]).password == second["redis_password"]
    assert {k: second[k] for k in GENERATED if k != "redis_password"} == \
        {k: first[k] for k in GENERATED if k != "redis_password"}


def test_an_unwritable_directory_fails_the_one_shot(tmp_path: Path) -> None:
    # A dependent waits for `service_completed_successfully`: a failure must be an exit
    # status, with a message, not a half-filled volume that looks fine.
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _make(blocker / "secrets")
    assert result.returncode != 0
    assert "cannot write the secrets" in result.stderr


# --- with-secrets ---------------------------------------------------------------------------

def test_with_secrets_exports_every_file_of_the_volume(tmp_path: Path) -> None:
    _make(tmp_path)
    values = _values(tmp_path)
    exported = _exported(tmp_path)
    assert exported == {setting: values[file] for file, setting in VOLUME_SECRETS.items()}


def test_a_value_already_set_wins_and_an_empty_one_does_not(tmp_path: Path) -> None:
    # .env through compose's `${NAME:-}` gives an empty variable when it sets nothing.
    _make(tmp_path)
    values = _values(tmp_path)
    exported = _exported(tmp_path, AUTH_SECRET="from-dotenv", DATA_SERVICE_TOKEN="")
    assert exported["AUTH_SECRET"] == "from-dotenv"
    assert exported["DATA_SERVICE_TOKEN"] == values["data_service_token"]


def test_without_the_directory_it_only_runs_the_command(tmp_path: Path) -> None:
    # Kubernetes: the settings come from the Secret, there is no volume.
    exported = _exported(tmp_path / "absent", AUTH_SECRET="from-the-secret")
    assert exported == {**dict.fromkeys(VOLUME_SECRETS.values()),
                        "AUTH_SECRET": "from-the-secret"}


def test_a_missing_file_leaves_its_variable_unset(tmp_path: Path) -> None:
    # Unset, not empty: an empty REDIS_URL would replace the code's default.
    (tmp_path / "auth_secret").write_text("only-this")
    assert _exported(tmp_path) == {**dict.fromkeys(VOLUME_SECRETS.values()),
                                   "AUTH_SECRET": "only-this"}


def test_with_secrets_execs_the_command_with_its_arguments_and_status(tmp_path: Path) -> None:
    # exec, not a child: the PID tini signals is the process itself.
    script = "import os, sys; print(os.getpid()); sys.exit(int(sys.argv[1]))"
    proc = subprocess.Popen(["sh", str(WITH_SECRETS), sys.executable, "-c", script, "7"],
                            env=_clean_env(TASKBROKER_SECRETS_DIR=str(tmp_path)),
                            stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 7
    assert int(out) == proc.pid


def test_with_secrets_without_a_command_is_a_usage_error() -> None:
    result = subprocess.run(["sh", str(WITH_SECRETS)], env=_clean_env(), capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 64 and "usage" in result.stderr


@pytest.mark.parametrize("path", [WITH_SECRETS, MAKE_SECRETS])
def test_scripts_are_executable_with_a_shebang(path: Path) -> None:
    # The Dockerfile sets the mode too (COPY --chmod); this keeps `ops/docker/x` runnable.
    assert path.read_text().startswith("#!")
    assert os.access(path, os.X_OK), f"chmod +x {path}"
