"""Real servers for the tests: each started on a free port, stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from backend.embedded import answers, free_port, mongo_command, redis_command

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


def start_redis(log_dir: Path, port: int | None = None,
                data_dir: Path | None = None) -> tuple[ManagedProcess, str]:
    """A redis-server as the project starts it (append-only file, noeviction); give the
    ``port`` and ``data_dir`` of a stopped one to restart it with its data."""
    port = port or free_port()
    data_dir = data_dir or log_dir / f"redis-{port}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = ManagedProcess(f"redis-{port}", redis_command(port, data_dir), log_dir).start()
    _ready_or_stopped(proc, lambda: proc.wait_port(port))
    return proc, f"redis://127.0.0.1:{port}/0"


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
    """``python -m module args`` with the given settings, as every deployment starts it."""
    return ManagedProcess(name, [sys.executable, "-m", module, *args], log_dir, env=env)
