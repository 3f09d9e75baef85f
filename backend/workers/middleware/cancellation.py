"""Cancellation: stopping a running task from another thread of the same worker process.

A cancel reaches a worker two ways, both through Redis: the kernel sets the job's
``stop`` marker (:mod:`backend.markers`), which the worker reads before it starts the
job and with each progress report, and it sends RQ's stop-job command, which interrupts
the task at once.

RQ's stop-job command arrives on the worker's pub/sub thread. The SimpleWorker runs
the task in the main thread, so there is no work horse to kill; instead the job is
marked cancelled here (``ctx.is_cancelled()`` sees it at once) and the main thread is
interrupted with a signal whose handler raises :class:`JobCancelledError`, but only
while that job's task function is on the stack, so a late command cannot hit the
worker's own code or the next job.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from backend.errors import JobCancelledError
from backend.workers.middleware.base import JobRun, Middleware

CANCEL_SIGNAL = signal.SIGUSR1

_lock = threading.Lock()
_active: str | None = None
_requested: set[str] = set()
_installed = False


def _raise_if_cancelled(signum: int, frame: object) -> None:
    job_id = _active
    if job_id is not None and job_id in _requested:
        raise JobCancelledError(f"job {job_id} was cancelled while it ran")


def install() -> None:
    """Install the signal handler (main thread of a worker process only)."""
    global _installed
    signal.signal(CANCEL_SIGNAL, _raise_if_cancelled)
    _installed = True


def request(job_id: str) -> None:
    """Cancel ``job_id`` if this process runs it (called from any thread)."""
    with _lock:
        _requested.add(job_id)
        interrupt = _installed and _active == job_id
    if interrupt:
        # Aim at the main thread: a process-directed signal may land on this thread and
        # leave the main thread asleep in a blocking call until it returns.
        signal.pthread_kill(threading.main_thread().ident or 0, CANCEL_SIGNAL)


def requested(job_id: str) -> bool:
    return job_id in _requested


def forget(job_id: str) -> None:
    """Drop a stop request that came too late to matter (the job has ended)."""
    with _lock:
        _requested.discard(job_id)


@contextlib.contextmanager
def active(job_id: str) -> Iterator[None]:
    """Mark ``job_id``'s task as running in this (the main) thread."""
    global _active
    with _lock:
        _active = job_id
        already = job_id in _requested
    try:
        if already:
            raise JobCancelledError(f"job {job_id} was cancelled before its task started")
        yield
    finally:
        with _lock:
            _active = None
            _requested.discard(job_id)


class Cancellation(Middleware):
    """Lets RQ's stop-job command interrupt the task (see the module doc)."""

    def around(self, run: JobRun, call: Callable[[], Any]) -> Any:
        with active(run.job_id):
            return call()
