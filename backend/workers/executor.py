"""``WorkerExecutor``: N worker processes, kept alive, stopped gracefully.

The executor is also where the housekeeping of a worker pool runs, on its own loop,
so no worker process has to: RQ's scheduler (retries wait in RQ's scheduled registry
for their backoff; its lock is short, so a dead host holds no retry back for long) and
the reaper (jobs of dead workers).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import time
from types import FrameType

from rq.serializers import JSONSerializer

from backend.settings import Settings
from backend.workers import reaper
from backend.workers.connections import WorkerConnections
from backend.workers.scheduler import Scheduler
from backend.workers.worker import BEATS_BEFORE_ABANDONED
from backend.workers.worker_process import StandardQueueWorker, Worker

log = logging.getLogger(__name__)

TICK = 0.25  # seconds between two looks at the workers and the scheduled registry
RESTART_DELAY = 1.0  # a worker that dies within this long of starting waits before restarting


class WorkerExecutor(Worker):
    """Starts ``count`` :class:`StandardQueueWorker` processes and supervises them."""

    def __init__(self, settings: Settings, count: int, queues: list[str],
                 connections: WorkerConnections | None = None) -> None:
        self.settings = settings
        self.count = count
        self.queues = list(queues)
        self.connections = connections or WorkerConnections(settings)
        self.workers: list[StandardQueueWorker] = []
        # Unique per start, not only per host and pid: a container restarted in the same
        # pod has the same hostname and pid 1, and RQ refuses a worker name still alive.
        self._prefix = f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}"
        self._generation = 0
        self._stopping = False
        self._now = False  # a second stop signal: the shutdown grace is over
        self._scheduler: Scheduler | None = None
        self._next_sweep = 0.0

    def _new_worker(self, slot: int) -> StandardQueueWorker:
        self._generation += 1
        return StandardQueueWorker(f"{self._prefix}.w{slot}.{self._generation}", self.queues)

    def start(self) -> None:
        """Start the worker processes (returns at once)."""
        log.info("starting %d workers on %s", self.count, ",".join(self.queues))
        heartbeat = self.settings.worker.worker_heartbeat
        self._scheduler = Scheduler(
            self.queues, connection=self.connections.redis, serializer=JSONSerializer,
            lock_ttl=round(heartbeat * BEATS_BEFORE_ABANDONED))
        for slot in range(self.count):
            worker = self._new_worker(slot)
            worker.start()
            self.workers.append(worker)

    def stop(self) -> None:
        """Ask the supervision loop to stop (safe from a signal handler)."""
        self._stopping = True

    def run(self) -> None:
        """Start, supervise until stopped, then shut the workers down."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM,
                                                                         signal.SIGINT)}
        try:
            self.start()
            while not self._stopping:
                self.supervise()
                time.sleep(TICK)
        finally:
            self.shutdown(self.settings.worker.shutdown_grace)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._stopping:
            # Warm, then cold: the second signal ends the grace at once (see shutdown).
            log.warning("got %s again: stopping now, handing the running jobs back", name)
            self._now = True
            return
        log.info("got %s: stopping the workers (again to stop at once)", name)
        self.stop()

    def supervise(self) -> None:
        """One round: replace dead workers, move due retries to their queue, reap."""
        for slot, worker in enumerate(self.workers):
            if not worker.alive and not self._stopping:
                self._replace(slot, worker)
        try:
            if self._scheduler is not None:
                self._scheduler.move_due_jobs()
            if time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self.settings.worker.worker_heartbeat
                connections = self.connections
                for job_id in reaper.sweep(connections.redis, connections.writer,
                                           self.settings.worker, self.queues):
                    log.warning("recovered job %s from a worker that stopped heartbeating", job_id)
        except Exception:  # Redis down: try next round
            log.exception("housekeeping failed; trying again")

    def _replace(self, slot: int, worker: StandardQueueWorker) -> None:
        if time.monotonic() - worker.started_at < RESTART_DELAY:
            return  # crash-looping: give it a moment
        log.warning("worker %s (pid %s) died with exit code %s; replacing it",
                    worker.name, worker.pid, worker.exitcode)
        self._recover(worker)
        replacement = self._new_worker(slot)
        replacement.start()
        self.workers[slot] = replacement

    def _recover(self, worker: StandardQueueWorker, reason: str | None = None) -> None:
        connections = self.connections
        try:
            job_id = reaper.recover_worker(connections.redis, connections.writer,
                                           self.settings.worker, worker.name, self.queues,
                                           reason)
        except Exception:  # the periodic sweep will find the job later
            log.exception("could not recover the job of worker %s", worker.name)
            return
        if job_id:
            log.warning("recovered job %s of dead worker %s", job_id, worker.name)

    def shutdown(self, grace: float) -> None:
        """Stop every worker: running jobs get ``grace`` seconds (less if a second stop
        signal comes), then they are killed and their jobs go back to the queue (retried)
        by the reaper."""
        self._stopping = True
        for worker in self.workers:
            worker.stop()
        deadline = time.monotonic() + grace
        # A second SIGTERM/SIGINT meanwhile (self._now) ends the grace at once.
        while (not self._now and time.monotonic() < deadline
               and any(worker.alive for worker in self.workers)):
            time.sleep(0.05)
        for worker in self.workers:
            if worker.alive:
                if self._now:
                    log.warning("worker %s still busy; stopping it now", worker.name)
                    reason = f"its worker {worker.name} was stopped at once (a second stop signal)"
                else:
                    log.warning("worker %s still busy after %.0f s; killing it", worker.name,
                                grace)
                    reason = (f"its worker {worker.name} was stopped after the {grace:.0f} s "
                              "shutdown grace")
                worker.kill()
                worker.join(5)
                self._recover(worker, reason)
        if self._scheduler is not None:
            try:
                self._scheduler.release_locks()
            except Exception:  # the locks expire by themselves
                log.debug("releasing scheduler locks failed", exc_info=True)
        self.connections.close()
        log.info("all workers stopped")
