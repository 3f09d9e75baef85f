"""The RQ worker class our worker processes run: RQ's SimpleWorker, adapted.

SimpleWorker runs each job in the worker process itself instead of forking a work
horse per job (see benchmarks/workers.py for what that saves). What the fork used to
give for free is added back here:

* heartbeats while a job runs (SimpleWorker sends none until the job ends), on a
  thread, so a dead worker's job expires from the started registry within a few
  WORKER_HEARTBEAT periods instead of the job timeout plus a minute;
* RQ's stop-job command, which would kill the horse, interrupts the task instead
  (:mod:`backend.workers.cancel`);
* jobs RQ's own registry cleanup finds abandoned go through our recovery too.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from typing import Any

import redis
from rq import SimpleWorker
from rq.exceptions import AbandonedJobError
from rq.job import Job as RQJob
from rq.queue import Queue

from backend.workers import cancel

log = logging.getLogger(__name__)

BEATS_BEFORE_ABANDONED = 4


class TaskWorker(SimpleWorker):
    """A SimpleWorker with in-job heartbeats and in-process job cancellation."""

    def __init__(self, *args: Any, heartbeat: float = 5.0, **kwargs: Any) -> None:
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
            cancel.forget(job.id)

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
            cancel.request(job_id)

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()
        cancel.install()

    def _recover_abandoned(self, job: RQJob, exc_type: type, exc_value: BaseException,
                           traceback: Any) -> bool:
        if exc_type is AbandonedJobError:
            from backend.workers.reaper import recover
            from backend.workers.services import get_services

            try:
                recover(get_services(), job.id, job.origin, "its worker stopped sending heartbeats")
            except Exception:  # an exception handler must not raise
                log.exception("job %s: recovery failed", job.id)
        return True
