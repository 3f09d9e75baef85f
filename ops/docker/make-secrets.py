#!/usr/bin/env python3
"""make-secrets [--dir DIR] [--redis-host HOST:PORT]: the secrets of the compose deployment.

docker-compose.yml's one-shot service `secrets` runs it (backend image, no network) before
anything else. At the first start it writes a random value into each missing or empty file
of DIR (the named volume `secrets`, mounted at /run/taskbroker):

    redis_password        Redis's --requirepass
    data_service_token    DATA_SERVICE_TOKEN, the data service's shared secret
    auth_secret           AUTH_SECRET, the key that signs sessions and API tokens
    dashboard_password    DASHBOARD_PASSWORD, rq-dashboard's basic auth password
    webhook_secret        WEBHOOK_SECRET, the key that signs webhooks

and keeps the existing files at every later start, so the values survive restarts and
rebuilds. Deleting the volume (`docker compose down -v`) makes new ones at the next start,
which signs out every session and voids every API token. It also writes redis_url
(REDIS_URL: redis://:PASSWORD@HOST:PORT/0), derived again from redis_password at every
start. Files are mode 0600, owned by the image's user (10001); only the names of
the files are printed, never a value.

It creates no user: see docker-compose.yml's header for the first admin.
Standard library only, so it runs on any Python 3.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from urllib.parse import quote

GENERATED = ("redis_password", "data_service_token", "auth_secret", "dashboard_password",
             "webhook_secret")
REDIS_URL_FILE = "redis_url"


def _write(path: Path, value: str) -> None:
    """``value`` into ``path`` (mode 0600), atomically: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def redis_url(password: str, host: str) -> str:
    return f"redis://:{quote(password, safe='')}@{host}/0"


def make_secrets(directory: Path, redis_host: str) -> tuple[list[str], list[str]]:
    """Fill ``directory``; returns the names of the files made and of those kept."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    made, kept = [], []
    for name in GENERATED:
        if _read(directory / name):
            kept.append(name)
        else:
            _write(directory / name, secrets.token_urlsafe(32))
            made.append(name)
    url = redis_url(_read(directory / "redis_password"), redis_host)
    if _read(directory / REDIS_URL_FILE) != url:
        _write(directory / REDIS_URL_FILE, url)
    return made, kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make-secrets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("/run/taskbroker"),
                        help="where the files go (default /run/taskbroker)")
    parser.add_argument("--redis-host", default="redis:6379",
                        help="HOST:PORT of the Redis in redis_url (default redis:6379)")
    args = parser.parse_args(argv)
    try:
        made, kept = make_secrets(args.dir, args.redis_host)
    except OSError as exc:
        print(f"make-secrets: cannot write the secrets into {args.dir}: {exc}", file=sys.stderr)
        return 1
    if made:
        print(f"make-secrets: generated {', '.join(made)} in {args.dir}")
    if kept:
        print(f"make-secrets: kept {', '.join(kept)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
