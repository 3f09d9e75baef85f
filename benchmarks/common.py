"""What the benchmarks share: starting and always stopping servers, the machine, tables.

Imported as ``benchmarks.common`` (the repository root is on ``sys.path``; each script
puts it there before its imports).
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.local.embedded import redis_server_binary  # noqa: E402
from tests.services import ManagedProcess  # noqa: E402


def percentile(seconds: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) in ms."""
    ordered = sorted(seconds)
    return 1000 * ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- servers: recorded as they start, stopped by PID whatever happens ----------------------
@contextmanager
def recording(started: list[ManagedProcess]) -> Iterator[None]:
    """Append every ManagedProcess to ``started`` the moment it starts.

    The helpers start a server and then wait for it; a Ctrl-C (or a timeout) during
    that wait would otherwise lose the only reference to a running server.
    """
    original = ManagedProcess.start

    def start(self: ManagedProcess) -> ManagedProcess:
        started.append(self)
        return original(self)

    ManagedProcess.start = start  # type: ignore[method-assign]
    try:
        yield
    finally:
        ManagedProcess.start = original  # type: ignore[method-assign]


def stop_all(processes: Sequence[ManagedProcess]) -> None:
    """Stop the processes by PID, the last started first (workers before their Redis).

    A second Ctrl-C must not cut the clean-up short and orphan servers, so SIGINT is
    ignored meanwhile."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for proc in reversed(processes):
            try:
                proc.stop()
            except Exception as exc:  # keep stopping the others
                print(f"could not stop {proc.name} (pid {proc.pid}): {exc}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the ``finally`` that stops the servers runs."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class LogFolder:
    """A temporary folder for the logs of the processes a benchmark starts; see
    :func:`process_logs`."""

    def __init__(self, prefix: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self.ok = False  # set when every run went well: only then are the logs deleted


@contextmanager
def process_logs(prefix: str) -> Iterator[LogFolder]:
    """A log folder, deleted at the end if the benchmark set ``ok``, else kept and named;
    SIGTERM meanwhile unwinds like Ctrl-C (:func:`terminate_as_interrupt`)."""
    logs = LogFolder(prefix)
    try:
        with terminate_as_interrupt():
            yield logs
    finally:
        if logs.ok:
            shutil.rmtree(logs.path, ignore_errors=True)
        else:
            print(f"process logs kept in {logs.path}", file=sys.stderr)


# -- what the tables are headed with ----------------------------------------------------
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{platform.system()} {platform.release()} {platform.machine()}, {cpu}, "
            f"{os.cpu_count()} CPUs")


@functools.cache
def versions() -> str:
    found = [f"Python {platform.python_version()}"]
    for label, package in (("RQ", "rq"), ("Celery", "celery"), ("redis-py", "redis")):
        try:
            found.append(f"{label} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{label} not installed")
    with suppress(OSError, subprocess.SubprocessError, IndexError):
        answer = subprocess.run([redis_server_binary(), "--version"], capture_output=True,
                                text=True, timeout=10).stdout
        found.append("redis-server " + answer.split(" v=")[1].split()[0])
    return ", ".join(found)


def print_table(heading: str, rows: Sequence[Sequence[str]]) -> None:
    """A markdown table (first row: the header) under a heading and the machine."""
    print(f"\n{heading}")
    print(f"machine: {machine()}; {versions()}\n")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))) + " |"

    print(line(rows[0]))
    print("|" + "|".join(("-" * (w + 1)) + (":" if i else "-")
                         for i, w in enumerate(widths)) + "|")
    for row in rows[1:]:
        print(line(row))
    sys.stdout.flush()
