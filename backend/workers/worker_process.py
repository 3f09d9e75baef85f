"""One worker process: its handle in the executor (:class:`StandardQueueWorker`) and
its main (:func:`work`), which runs a :class:`~backend.workers.worker.TaskWorker` until
asked to stop."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from multiprocessing.process import BaseProcess

from backend.logs import configure_process
from backend.tracing import configure_tracing, shutdown_tracing
from backend.workers.connections import get_connections
from backend.workers.worker import TaskWorker

log = logging.getLogger("backend.workers.worker")

# Forking the supervisor is much cheaper than spawning a fresh interpreter, and it has
# no threads to worry about. Tasks and settings are already imported in the parent.
_MP = multiprocessing.get_context("fork")


class Worker(ABC):
    """Something that runs jobs and can be started and stopped."""

    @abstractmethod
    def start(self) -> None:
        """Start working (returns once started)."""

    @abstractmethod
    def stop(self) -> None:
        """Ask to stop gracefully: finish the current job, take no new one."""


class StandardQueueWorker(Worker):
    """One process running a :class:`TaskWorker` on the executor's queues."""

    def __init__(self, name: str, queues: list[str]) -> None:
        self.name = name
        self.queues = list(queues)
        self.started_at = 0.0
        self._process: BaseProcess | None = None

    def start(self) -> None:
        self._process = _MP.Process(target=work, args=(self.name, self.queues, os.getpid()),
                                    name=self.name, daemon=False)
        self._process.start()
        self.started_at = time.monotonic()
        log.info("worker %s started (pid %s) on %s", self.name, self.pid, ",".join(self.queues))

    def stop(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def signal(self, sig: int) -> None:
        if self.alive and self.pid:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def join(self, timeout: float | None = None) -> None:
        if self._process is not None:
            self._process.join(timeout)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def exitcode(self) -> int | None:
        return self._process.exitcode if self._process is not None else None


def _watch_parent(parent_pid: int) -> None:
    """Stop gracefully if the executor died (kill -9): a worker never outlives it."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            log.warning("worker executor %d is gone; stopping", parent_pid)
            os.kill(os.getpid(), signal.SIGTERM)
            return


def work(name: str, queues: list[str], parent_pid: int) -> None:
    """The worker process: run jobs until asked to stop."""
    # The executor's handlers were inherited by the fork; RQ installs its own in work().
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    connections = get_connections()
    settings = connections.settings
    configure_process("worker", settings)
    configure_tracing(settings.observability, "worker")
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch",
                     daemon=True).start()
    worker = TaskWorker(queues, name=name, connection=connections.redis,
                        heartbeat=settings.worker.worker_heartbeat,
                        running_after=settings.worker.report_interval)
    try:
        # RQ sets its loggers' level from this: keep what configure_logging chose.
        worker.work(logging_level=logging.getLogger("rq.worker").getEffectiveLevel(),
                    with_scheduler=False)
    finally:
        shutdown_tracing()
        connections.close()
