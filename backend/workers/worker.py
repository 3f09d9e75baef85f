"""One worker process: an RQ SimpleWorker that runs our jobs, and its process handle.

SimpleWorker runs each job in the worker process itself instead of forking a work
horse per job (see benchmarks/workers.py for what that saves). What the fork used to
give for free is added back in :class:`TaskWorker`:

* heartbeats while a job runs (SimpleWorker sends none until the job ends), on a
  thread, so a dead worker's job expires from the started registry within a few
  WORKER_HEARTBEAT periods instead of the job timeout plus a minute;
* RQ's stop-job command, which would kill the horse, interrupts the task instead
  (:mod:`backend.workers.middleware.cancellation`);
* jobs RQ's own registry cleanup finds abandoned go through our recovery too.

And one thing RQ does not do: a worker performs only the job runner
(:data:`backend.workers.enqueue.RUN_JOB`), read with RQ's JSON serializer. Anyone who
can write to Redis could otherwise make a worker call any importable function (or
unpickle anything).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from multiprocessing.process import BaseProcess
from typing import Any

import redis
from rq import SimpleWorker
from rq.exceptions import AbandonedJobError
from rq.job import Job as RQJob
from rq.queue import Queue
from rq.serializers import JSONSerializer

from backend.errors import PermanentError
from backend.logs import configure_logging
from backend.workers.connections import get_connections
from backend.workers.enqueue import RUN_JOB
from backend.workers.middleware import cancellation

log = logging.getLogger(__name__)

BEATS_BEFORE_ABANDONED = 4

# Forking the supervisor is much cheaper than spawning a fresh interpreter, and it has
# no threads to worry about. Tasks and settings are already imported in the parent.
_MP = multiprocessing.get_context("fork")


class RefusedJobError(PermanentError):
    """An RQ job that names anything but the job runner: it is failed, never performed."""


class RunnerJob(RQJob):
    """An RQ job that performs the job runner and nothing else."""

    def _execute(self) -> Any:
        name = self.func_name  # reading it decodes the job's data (JSON, never pickle)
        if name != RUN_JOB:
            log.error("refused RQ job %s: it names %r; workers only perform %s", self.id,
                      name, RUN_JOB)
            raise RefusedJobError(f"refused: RQ job {self.id} names {name!r}; this worker "
                                  f"only performs {RUN_JOB}")
        return super()._execute()


class TaskWorker(SimpleWorker):
    """A SimpleWorker with in-job heartbeats, in-process cancellation and a job allowlist."""

    def __init__(self, *args: Any, heartbeat: float = 5.0, **kwargs: Any) -> None:
        kwargs.setdefault("job_class", RunnerJob)
        kwargs.setdefault("serializer", JSONSerializer)
        super().__init__(*args, **kwargs)
        self.heartbeat_interval = heartbeat
        self.heartbeat_ttl = max(2, math.ceil(heartbeat * BEATS_BEFORE_ABANDONED))
        self.push_exc_handler(self._recover_abandoned)
        self._beat_thread: threading.Thread | None = None
        self._beating: RQJob | None = None

    def get_heartbeat_ttl(self, job: RQJob) -> int:
        # Short, because the heartbeat thread keeps refreshing it while the job runs.
        return self.heartbeat_ttl

    def execute_job(self, job: RQJob, queue: Queue) -> None:
        if self._beat_thread is None:
            # One thread for the worker's life: starting one per job would cost more than
            # the job itself for short tasks.
            self._beat_thread = threading.Thread(target=self._beat, name="heartbeat",
                                                 daemon=True)
            self._beat_thread.start()
        self._beating = job
        try:
            super().execute_job(job, queue)
        finally:
            self._beating = None
            self._stopped_job_id = None
            cancellation.forget(job.id)

    def _beat(self) -> None:
        while True:
            time.sleep(self.heartbeat_interval)
            job, execution = self._beating, self.execution
            if job is None or execution is None:
                continue
            try:
                with self.connection.pipeline() as pipe:
                    self.heartbeat(self.heartbeat_ttl + 60, pipeline=pipe)
                    # xx: never re-adds an entry the job's end (or a reaper) removed.
                    execution.heartbeat(job.started_job_registry, self.heartbeat_ttl,
                                        pipeline=pipe)
                    pipe.execute()
            except redis.RedisError as exc:
                log.warning("heartbeat of job %s failed: %s", job.id, exc)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        # RQ calls this for the stop-job command; there is no horse, stop the task itself.
        job_id = self._stopped_job_id
        if job_id:
            log.info("stop requested for job %s", job_id)
            cancellation.request(job_id)

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()
        cancellation.install()

    def _recover_abandoned(self, job: RQJob, exc_type: type, exc_value: BaseException,
                           traceback: Any) -> bool:
        if exc_type is AbandonedJobError:
            from backend.workers.reaper import recover

            connections = get_connections()
            try:
                recover(connections.redis, connections.writer, connections.settings.worker,
                        job.id, job.origin, "its worker stopped sending heartbeats")
            except Exception:  # an exception handler must not raise
                log.exception("job %s: recovery failed", job.id)
        return True


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
    configure_logging(settings.local.log_level)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch",
                     daemon=True).start()
    worker = TaskWorker(queues, name=name, connection=connections.redis,
                        heartbeat=settings.worker.worker_heartbeat)
    try:
        # RQ sets its loggers' level from this: keep what configure_logging chose.
        worker.work(logging_level=logging.getLogger("rq.worker").getEffectiveLevel(),
                    with_scheduler=False)
    finally:
        connections.close()
