#!/usr/bin/env python3
"""make-secrets [--dir DIR] [--roles-dir ROLES] [--redis-host H:P] [--mongo-host H:P]:
the secrets of the compose deployment, each service's share in a volume of its own.

docker-compose.yml's one-shot service `secrets` runs it (backend image, no network) before
anything else. At the first start it writes a random value into each missing or empty file
of DIR (the named volume `secrets`, mounted at /run/taskbroker; no other service mounts it):

    redis_password        Redis's --requirepass
    mongo_password        MongoDB's root password (user MONGO_USER, MONGO_INITDB_ROOT_*)
    data_service_token    DATA_SERVICE_TOKEN, the data service's shared secret
    auth_secret           AUTH_SECRET, the key that signs sessions and API tokens
    dashboard_password    DASHBOARD_PASSWORD, rq-dashboard's basic auth password
    webhook_secret        WEBHOOK_SECRET, the key that signs webhooks
    metrics_token         METRICS_TOKEN, the bearer token every /metrics wants

and keeps the existing files at every later start, so the values survive restarts and
rebuilds. Deleting the volume (`docker compose down -v`) makes new ones at the next start,
which signs out every session and voids every API token. It also writes redis_url
(REDIS_URL: redis://:PASSWORD@REDIS_HOST/0) and mongodb_url (MONGODB_URL, with the root
user and password), derived again at every start.

Then, for each role of ROLES below whose directory ROLES_DIR/<role> exists (compose mounts
the role's own volume there), it copies in that role's files, and only those: a service
mounts only its role's volume, so a worker never holds the key that signs sessions. Files
are mode 0600 in DIR and 0640 in the roles' directories (0750), owned by the image's user
and group (10001), which Prometheus joins to read its token. Only the names of the files
are printed, never a value.

It creates no user of the app: see docker-compose.yml's header for the first admin.
Standard library only, so it runs on any Python 3.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from urllib.parse import quote

GENERATED = ("redis_password", "mongo_password", "data_service_token", "auth_secret",
             "dashboard_password", "webhook_secret", "metrics_token")
REDIS_URL_FILE = "redis_url"
MONGODB_URL_FILE = "mongodb_url"
MONGO_USER = "taskbroker"  # docker-compose.yml's MONGO_INITDB_ROOT_USERNAME

# Who gets which file: each process only what it uses (backend/local/supervisor.py's PROCESS_SECRETS,
# which the ops tests hold this to).
ROLES = {
    "api": ("redis_url", "data_service_token", "auth_secret", "webhook_secret",
            "metrics_token"),
    "store": ("mongodb_url", "data_service_token", "metrics_token"),
    "dispatcher": ("redis_url", "data_service_token", "webhook_secret", "metrics_token"),
    # Task code runs here: Redis (their queues and reports) and their own /metrics only.
    "worker": ("redis_url", "metrics_token"),
    "rq-dashboard": ("redis_url", "dashboard_password"),
    "redis": ("redis_password",),
    "mongo": ("mongo_password",),
    "prometheus": ("metrics_token",),
}


def _write(path: Path, value: str, mode: int = 0o600) -> None:
    """``value`` into ``path`` (``mode``), atomically: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(value)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, mode)  # whatever the umask
    os.replace(tmp, path)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def redis_url(password: str, host: str) -> str:
    return f"redis://:{quote(password, safe='')}@{host}/0"


def mongodb_url(password: str, host: str) -> str:
    return (f"mongodb://{MONGO_USER}:{quote(password, safe='')}@{host}/"
            "?authSource=admin")


def make_secrets(directory: Path, redis_host: str,
                 mongo_host: str = "mongo:27017") -> tuple[list[str], list[str]]:
    """Fill ``directory``; returns the names of the files made and of those kept."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    made, kept = [], []
    for name in GENERATED:
        if _read(directory / name):
            kept.append(name)
        else:
            _write(directory / name, secrets.token_urlsafe(32))
            made.append(name)
    derived = {REDIS_URL_FILE: redis_url(_read(directory / "redis_password"), redis_host),
               MONGODB_URL_FILE: mongodb_url(_read(directory / "mongo_password"), mongo_host)}
    for name, url in derived.items():
        if _read(directory / name) != url:
            _write(directory / name, url)
    return made, kept


def share(directory: Path, roles_dir: Path) -> list[str]:
    """Copy each role's files into ``roles_dir/<role>`` where that directory exists, and
    remove any other file there; returns the roles served."""
    served = []
    for role, names in ROLES.items():
        target = roles_dir / role
        if not target.is_dir():
            continue
        target.chmod(0o750)
        for stale in target.iterdir():
            if stale.is_file() and stale.name not in names:
                stale.unlink()
        for name in names:
            value = _read(directory / name)
            if _read(target / name) != value:
                _write(target / name, value, 0o640)
            else:
                (target / name).chmod(0o640)
        served.append(role)
    return served


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make-secrets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("/run/taskbroker"),
                        help="where the files go (default /run/taskbroker)")
    parser.add_argument("--roles-dir", type=Path, default=None,
                        help="where each role's directory is (e.g. /run/taskbroker-roles)")
    parser.add_argument("--redis-host", default="redis:6379",
                        help="HOST:PORT of the Redis in redis_url (default redis:6379)")
    parser.add_argument("--mongo-host", default="mongo:27017",
                        help="HOST:PORT of the MongoDB in mongodb_url (default mongo:27017)")
    args = parser.parse_args(argv)
    try:
        made, kept = make_secrets(args.dir, args.redis_host, args.mongo_host)
        served = share(args.dir, args.roles_dir) if args.roles_dir else []
    except OSError as exc:
        print(f"make-secrets: cannot write the secrets into {args.dir}: {exc}", file=sys.stderr)
        return 1
    if made:
        print(f"make-secrets: generated {', '.join(made)} in {args.dir}")
    if kept:
        print(f"make-secrets: kept {', '.join(kept)}")
    for role in served:
        print(f"make-secrets: {role} gets {', '.join(ROLES[role])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
