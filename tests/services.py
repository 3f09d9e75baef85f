"""Real servers for the tests: each started on a free port, stopped by PID."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from backend.local.embedded import answers, free_port, mongo_command, redis_command

ROOT = Path(__file__).resolve().parent.parent


class ManagedProcess:
    """A child process with its output in a log file, stopped by PID."""

    def __init__(self, name: str, command: list[str], log_dir: Path,
                 env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.name = name
        self.command = command
        self.log_path = log_dir / f"{name}.log"
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                     env=self._env, cwd=self._cwd, start_new_session=True)
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_until(self, check: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                if check():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def wait_http(self, url: str, timeout: float = 30.0) -> ManagedProcess:
        self.wait_until(lambda: httpx.get(url, timeout=1.0).status_code == 200, timeout)
        return self

    def wait_port(self, port: int, timeout: float = 30.0) -> ManagedProcess:
        self.wait_until(lambda: answers("127.0.0.1", port), timeout)
        return self

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            assert self.proc is not None
            self.proc.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _ready_or_stopped(proc: ManagedProcess, wait: Callable[[], object]) -> None:
    """Wait for a server; if it never gets ready (or the wait is interrupted), stop it."""
    try:
        wait()
    except BaseException:
        proc.stop()
        raise


# The settings every process of a test system gets besides its addresses: the shared
# secrets (test values, nothing real) and limits high enough for tests that submit in
# bursts (the tests of the limits themselves set their own).
TEST_SECRETS = {
    "DATA_SERVICE_TOKEN": "test-data-service-token",
    "AUTH_SECRET": "test-auth-secret-that-signs-sessions-and-tokens",
    "DASHBOARD_PASSWORD": "test-dashboard-password",
    "SUBMIT_RATE_LIMIT": "100000/second",
    "LOGIN_RATE_LIMIT": "100000/second",
    "LOGIN_FAILURES_PER_ACCOUNT": "100000",
}
TEST_PASSWORD = "test-password-123"
SERVICE_HEADERS = {"X-Service-Token": TEST_SECRETS["DATA_SERVICE_TOKEN"]}


def start_redis(log_dir: Path, port: int | None = None, data_dir: Path | None = None,
                password: str | None = None) -> tuple[ManagedProcess, str]:
    """A redis-server as the project starts it (append-only file, noeviction, a
    password); give the ``port``, ``data_dir`` and ``password`` of a stopped one to restart
    it with its data. Returns the process and its URL (password included)."""
    port = port or free_port()
    data_dir = data_dir or log_dir / f"redis-{port}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    password = password or secrets.token_hex(8)
    proc = ManagedProcess(f"redis-{port}", redis_command(port, data_dir, password=password),
                          log_dir).start()
    _ready_or_stopped(proc, lambda: proc.wait_port(port))
    return proc, f"redis://:{password}@127.0.0.1:{port}/0"


def create_user(store_url: str, username: str, password: str = TEST_PASSWORD,
                role: str = "user") -> None:
    """A user in the data service at ``store_url`` (as `taskbroker users create` makes)."""
    answer = httpx.post(f"{store_url}/users", headers=SERVICE_HEADERS, timeout=30,
                        json={"username": username, "password": password, "role": role})
    assert answer.status_code in (201, 409), answer.text


def sign_in(api_url: str, username: str, password: str = TEST_PASSWORD) -> str:
    """An API token for ``username`` from the kernel at ``api_url`` (what `login` does)."""
    answer = httpx.post(f"{api_url}/api/v1/auth/token", timeout=30,
                        json={"username": username, "password": password, "name": "tests"})
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def start_mongo(log_dir: Path, db_path: Path | str = "memory",
                port: int | None = None) -> tuple[ManagedProcess, str]:
    port = port or free_port()
    command = mongo_command(port, db_path, log_file=log_dir / f"nx-{port}.log",
                            pid_file=log_dir / f"nx-{port}.pid")
    proc = ManagedProcess(f"mongo-{port}", command, log_dir).start()
    _ready_or_stopped(proc, lambda: proc.wait_port(port))
    return proc, f"mongodb://127.0.0.1:{port}"


def start_moto(log_dir: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    proc = ManagedProcess(f"moto-{port}", [str(moto), "-H", "127.0.0.1", "-p", str(port)],
                          log_dir).start()
    url = f"http://127.0.0.1:{port}"
    _ready_or_stopped(proc, lambda: proc.wait_http(f"{url}/moto-api/"))
    return proc, url


def python_module(name: str, module: str, log_dir: Path, env: dict[str, str],
                  *args: str) -> ManagedProcess:
    """``python -m module args`` with the given settings (over :data:`TEST_SECRETS`), as
    every deployment starts it."""
    return ManagedProcess(name, [sys.executable, "-m", module, *args], log_dir,
                          env={**TEST_SECRETS, **env})
