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
(:data:`backend.rqjobs.RUN_JOB`), read with RQ's JSON serializer, from a job
hash with nothing else in it (:mod:`backend.workers.allowlist`). Anyone who can write to
Redis could otherwise make a worker call any importable function (or unpickle
anything), import and call the callbacks a hash names, or send its RQ webhooks.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import threading
import time
import zlib
from abc import ABC, abstractmethod
from multiprocessing.process import BaseProcess
from typing import Any

import redis
from rq import SimpleWorker
from rq.exceptions import AbandonedJobError
from rq.executions import Execution
from rq.job import UNEVALUATED, _job_stack
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.queue import Queue
from rq.registry import CanceledJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.suspension import is_suspended
from rq.utils import current_timestamp, now, utcformat
from rq.worker import WorkerStatus

from backend import markers
from backend.errors import RefusedJobError
from backend.jobs import JobStatus
from backend.logs import configure_process
from backend.reports import Report
from backend.rqjobs import RUN_JOB
from backend.tracing import configure_tracing, shutdown_tracing
from backend.workers.allowlist import refusal
from backend.workers.connections import get_connections
from backend.workers.middleware import cancellation
from backend.workers.reporter import Begun, ReportWriter

log = logging.getLogger(__name__)

BEATS_BEFORE_ABANDONED = 4
# Takes the next job of the worker's queues (in order) and returns its queue key, id and
# hash, as RQ's dequeue (LPOP, or LMOVE to the intermediate list for a single queue) and
# Job.fetch would; nothing when the queues are empty.
# KEYS: the queue keys; ARGV[1]: the intermediate list ('' unless one queue); ARGV[2]:
# the job key prefix.
_TAKE_NEXT = """
for _, key in ipairs(KEYS) do
  local id
  if ARGV[1] ~= '' then
    id = redis.call('lmove', key, ARGV[1], 'LEFT', 'RIGHT')
  else
    id = redis.call('lpop', key)
  end
  if id then return {key, id, redis.call('hgetall', ARGV[2] .. id)} end
end
return false
"""
WORKER_KEY_REFRESH = 1.0  # seconds between two refreshes of the worker's own key
SUSPENSION_CHECK_EVERY = 1.0  # seconds between two looks at `rq suspend`

# Forking the supervisor is much cheaper than spawning a fresh interpreter, and it has
# no threads to worry about. Tasks and settings are already imported in the parent.
_MP = multiprocessing.get_context("fork")


class RunnerJob(RQJob):
    """An RQ job that performs the job runner and nothing else.

    The worker hands the runner what it learnt while preparing the job (its ``stop`` and
    ``done`` markers, read in the same round trip) and takes back the runner's end report
    to write it in the same transaction as RQ's own end of the job.

    Its hash is checked as it is read (:mod:`backend.workers.allowlist`): a refused job
    keeps why in :attr:`refusal` and is never performed. Whatever the hash says, this job
    has no callbacks, webhooks, retries, repeats or dependencies for RQ to act on, on
    every path RQ reads one (the worker's dequeue, its registry cleanup).
    """

    worker: TaskWorker | None = None
    markers: Begun | None = None
    refusal: str | None = None

    def restore(self, raw_data: Any) -> None:
        self.refusal = refusal(raw_data)
        try:
            super().restore(raw_data)
        except Exception as exc:  # unreadable: RQ would stop the worker over it
            self.refusal = self.refusal or f"RQ cannot read it ({type(exc).__name__})"
            if self._data is UNEVALUATED and self._func_name is UNEVALUATED:
                self.data = b""  # so RQ can still save it as failed
        if self.refusal is not None:
            self._success_callback_name = self._failure_callback_name = None
            self._stopped_callback_name = None
            self.webhooks = []
            self._dependency_ids = []
            self.retries_left = self.repeats_left = None

    # Never resolved from a name (an import and a call), whatever the hash says.
    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None

    def send_webhooks(self, status: Any, *, exc_string: str | None = None) -> None:
        """Our jobs have no RQ webhooks (the project's own are sent by the dispatcher)."""

    def _execute(self) -> Any:
        name = self.func_name  # reading it decodes the job's data (JSON, never pickle)
        if name != RUN_JOB:
            log.error("refused RQ job %s: it names %r; workers only perform %s", self.id,
                      name, RUN_JOB)
            raise RefusedJobError(f"refused: RQ job {self.id} names {name!r}; this worker "
                                  f"only performs {RUN_JOB}")
        return super()._execute()

    def perform(self) -> Any:
        # RQ's perform() first PERSISTs the job key (one more round trip); ours never
        # expire (enqueued without a TTL), so only the job stack that
        # get_current_job() reads is kept.
        _job_stack.push(self)
        try:
            self._result = self._execute()
        finally:
            assert self is _job_stack.pop()
        return self._result


class TaskWorker(SimpleWorker):
    """A SimpleWorker with in-job heartbeats, in-process cancellation, a job allowlist and
    few Redis round trips per job.

    RQ makes about fifteen round trips per job; most are bookkeeping that can share one:
    the two preparations of a job and the read of its markers go in one pipeline, the
    end of the job (RQ's, and the end report with the ``done`` marker) in one transaction
    that also takes the next job waiting (RQ's pop and fetch, see :data:`_TAKE_NEXT`), and
    the worker's own heartbeat and suspension check happen at most once a second instead
    of several times per job. Under load that is two round trips per job. What lands in
    Redis is what RQ writes, except for what our jobs never use (dependents, job TTLs).

    A job taken with the end of the previous one is started at once; a worker that stops
    (or is suspended) before starting it puts it back at the head of its queue. A worker
    killed in between leaves it out of RQ, as RQ's own pop would: the reconciler sends
    it again.
    """

    def __init__(self, *args: Any, heartbeat: float = 5.0, running_after: float = 0.5,
                 **kwargs: Any) -> None:
        kwargs.setdefault("job_class", RunnerJob)
        kwargs.setdefault("serializer", JSONSerializer)
        super().__init__(*args, **kwargs)
        self.heartbeat_interval = heartbeat
        self.heartbeat_ttl = max(2, math.ceil(heartbeat * BEATS_BEFORE_ABANDONED))
        self.running_after = running_after
        self.push_exc_handler(self._recover_abandoned)
        self._beat_thread: threading.Thread | None = None
        self._beating: RQJob | None = None
        self._announce: tuple[RQJob, Report, float] | None = None  # `running`, when due
        self._prepared: RQJob | None = None
        self._staged: list[Report] = []
        self._writer: ReportWriter | None = None
        self._last_beat = float("-inf")
        self._next_suspension_check = 0.0
        self._next: tuple[str, str, dict[bytes, bytes]] | None = None  # taken, not started

    def get_heartbeat_ttl(self, job: RQJob) -> int:
        # Short, because the heartbeat thread keeps refreshing it while the job runs.
        return self.heartbeat_ttl

    # -- fewer round trips -------------------------------------------------------------
    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None or timeout is not None:
            super().heartbeat(timeout, pipeline=pipeline)
            return
        # The worker key lives minutes (worker_ttl); RQ refreshes it three times a job.
        if time.monotonic() - self._last_beat < WORKER_KEY_REFRESH:
            return
        self._last_beat = time.monotonic()
        with self.connection.pipeline() as pipe:
            super().heartbeat(None, pipeline=pipe)
            pipe.execute()

    def check_for_suspension(self, burst: bool) -> None:
        if time.monotonic() < self._next_suspension_check:
            return
        self._next_suspension_check = time.monotonic() + SUSPENSION_CHECK_EVERY
        if self._next is not None and is_suspended(self.connection, self):
            self._put_back()  # it waits in its queue, not in a suspended worker
        super().check_for_suspension(burst)

    # -- the next job, taken with the end of the last one --------------------------------
    def _take_next_with(self, pipeline: Any) -> bool:
        """Add the taking of the next job to ``pipeline`` (its reply comes last), unless
        this worker is about to stop; whether it was added."""
        if self._stop_requested:
            return False
        queues = self._ordered_queues
        intermediate = queues[0].intermediate_queue_key if len(queues) == 1 else ""
        # EVAL, not a registered script: redis-py checks those with SCRIPT EXISTS before
        # every pipeline, a round trip more.
        pipeline.eval(_TAKE_NEXT, len(queues), *(queue.key for queue in queues), intermediate,
                      self.job_class.redis_job_namespace_prefix)
        return True

    def _keep_next(self, reply: Any) -> None:
        if not reply:
            return
        key, job_id, flat = reply
        self._next = (key.decode(), job_id.decode(), dict(zip(flat[::2], flat[1::2],
                                                              strict=True)))

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None,
                                     ) -> tuple[RQJob, Queue] | None:
        taken, self._next = self._next, None
        if taken is None:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        key, job_id, data = taken
        queue = next(queue for queue in self._ordered_queues if queue.key == key)
        if not data:  # deleted since it was enqueued: RQ skips it too
            return self.dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        self.heartbeat()
        if self.should_run_maintenance_tasks:
            self.run_maintenance_tasks()
        job = self.job_class(job_id, connection=self.connection, serializer=self.serializer)
        job.restore(data)
        self.reorder_queues(reference_queue=queue)
        job.redis_server_version = self.get_redis_server_version()
        self.log.info("Worker %s: %s: %s", self.name, queue.name, job.id)
        return job, queue

    def _put_back(self) -> None:
        """Return a taken job that will not start here to the head of its queue."""
        taken, self._next = self._next, None
        if taken is None:
            return
        key, job_id, _ = taken
        queues = self._ordered_queues
        try:
            with self.connection.pipeline() as pipe:
                if len(queues) == 1:
                    pipe.lrem(queues[0].intermediate_queue_key, 1, job_id)
                pipe.lpush(key, job_id)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("job %s could not go back to its queue (%s); the reconciler will "
                        "send it again", job_id, exc)

    def teardown(self) -> None:
        self._put_back()
        super().teardown()

    def set_state(self, state: str, pipeline: Any = None) -> None:
        # RQ writes "idle" after a job and again before dequeueing the next one.
        if pipeline is None and state == getattr(self, "_state", None):
            return
        super().set_state(state, pipeline=pipeline)

    def _prepare(self, job: RQJob) -> None:
        """RQ's prepare_execution and prepare_job_execution, and the job's markers, in one
        round trip."""
        ttl = self.get_heartbeat_ttl(job)
        with self.connection.pipeline() as pipeline:
            self.execution = Execution.create(job, ttl, pipeline=pipeline, worker_name=self.name)
            self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
            self.set_current_job_id(job.id, pipeline=pipeline)
            self.set_current_job_working_time(0, pipeline=pipeline)
            self.heartbeat(ttl, pipeline=pipeline)
            job.heartbeat(now(), ttl, pipeline=pipeline)
            job.prepare_for_execution(self.name, pipeline=pipeline)
            if len(self.queues) == 1:
                pipeline.lrem(self.queues[0].intermediate_queue_key, 1, job.id)
            pipeline.get(markers.stop_key(job.id))
            pipeline.exists(markers.done_key(job.id))
            *_, stop, done = pipeline.execute()
        if isinstance(job, RunnerJob):
            job.worker = self
            job.markers = Begun(stop=stop.decode() if stop is not None else None,
                                done=bool(done))
        self._prepared = job

    def prepare_job_execution(self, job: RQJob, remove_from_intermediate_queue: bool = False,
                              ) -> None:
        if self._prepared is job:
            return  # done in _prepare, with the rest
        super().prepare_job_execution(job, remove_from_intermediate_queue)

    def handle_execution_ended(self, job: RQJob, queue: Queue, heartbeat_ttl: int) -> None:
        # RQ also refreshes the job's heartbeat here, for success callbacks we never set.
        job.ended_at = now()

    def handle_job_success(self, job: RQJob, queue: Queue, started_job_registry: Any) -> None:
        """RQ's handle_job_success, in one transaction with the job's end report, tried
        again until Redis takes it. Our jobs have no dependents: no WATCH for them."""
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        # A job that ended cancelled (stopped while it ran, or before) is RQ's cancelled
        # job too, as RQ's own cancel files one: rq-dashboard shows it cancelled.
        cancelled = any(report.status is JobStatus.CANCELLED for report in self._staged)
        if cancelled:
            result_ttl = job.failure_ttl if job.failure_ttl is not None else result_ttl
        execution = self.execution
        assert execution is not None and job.started_at and job.ended_at
        backoff = 0.05
        while True:
            self.execution = execution
            try:
                with self.connection.pipeline() as pipeline:
                    self.increment_successful_job_count(pipeline=pipeline)
                    self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
                    if result_ttl != 0:
                        job._handle_success(result_ttl, pipeline=pipeline, worker_name=self.name,
                                            execution_id=execution.id,
                                            execution_started_at=execution.created_at,
                                            execution_ended_at=job.ended_at)
                    if cancelled:
                        self._file_cancelled(job, pipeline)
                    job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
                    self.cleanup_execution(job, pipeline=pipeline)
                    for report in self._staged:
                        ReportWriter.append_end(pipeline, report, self._done_ttl())
                    taking = self._take_next_with(pipeline)
                    replies = pipeline.execute()
                if taking:  # kept even if a stop came meanwhile: teardown puts it back
                    self._keep_next(replies[-1])
                break
            except redis.ConnectionError as exc:
                log.warning("job %s: Redis did not take its end (%s); trying again", job.id, exc)
                time.sleep(backoff)
                backoff = min(2.0, backoff * 2)
        self._staged = []

    def _file_cancelled(self, job: RQJob, pipeline: Any) -> None:
        """Move a job that returned cancelled (its result kept) to RQ's cancelled jobs."""
        job.set_status(RQStatus.CANCELED, pipeline=pipeline)
        pipeline.zrem(job.finished_job_registry.key, job.id)
        CanceledJobRegistry(job.origin, connection=self.connection,
                            serializer=self.serializer).add(job, ttl=job.failure_ttl or 0,
                                                            pipeline=pipeline)

    def cleanup_execution(self, job: RQJob, pipeline: Any) -> None:
        super().cleanup_execution(job, pipeline)
        # Every end of a job passes here with its pipeline: the idle state goes with it.
        self.set_state(WorkerStatus.IDLE, pipeline=pipeline)

    def _done_ttl(self) -> int:
        return get_connections().settings.worker.done_ttl

    def stage_end(self, report: Report) -> None:
        """Write ``report`` in the transaction of RQ's end of a job that returned (it is
        written on its own should that end not come)."""
        self._staged.append(report)

    def announce_running(self, job: RQJob, report: Report) -> None:
        """Report ``running`` if the job still runs ``running_after`` seconds from now
        (a short job's end says it all: one report instead of two)."""
        self._announce = (job, report, time.monotonic() + self.running_after)

    def ran_past_start(self, job: RQJob) -> bool:
        """Whether ``running`` was reported for ``job`` (and is no longer pending)."""
        announce = self._announce
        return announce is None or announce[0] is not job

    def cancel_announce(self, job: RQJob) -> None:
        if self._announce is not None and self._announce[0] is job:
            self._announce = None

    # -- the job's life ------------------------------------------------------------------
    def execute_job(self, job: RQJob, queue: Queue) -> None:
        if isinstance(job, RunnerJob) and job.refusal is not None:
            self._refuse(job, queue)
            return
        if self._beat_thread is None:
            # One thread for the worker's life: starting one per job would cost more than
            # the job itself for short tasks.
            self._beat_thread = threading.Thread(target=self._beat, name="heartbeat",
                                                 daemon=True)
            self._beat_thread.start()
        self._beating = job
        self._staged = []
        try:
            self._prepare(job)
            self.perform_job(job, queue)
            self.set_state(WorkerStatus.IDLE)
        finally:
            if self._staged:  # not written with RQ's end (a failure on the way): now
                for report in self._staged:
                    get_connections().writer.end(report)
                self._staged = []
            self._announce = None
            self._prepared = None
            self._beating = None
            self._stopped_job_id = None
            cancellation.forget(job.id)

    def _refuse(self, job: RunnerJob, queue: Queue) -> None:
        """File a refused job as failed, by hand: RQ's failure handling would run its
        callbacks, webhooks, retries and dependents, and a broken hash could stop it."""
        log.error("refused RQ job %s: %s", job.id, job.refusal)
        error = f"refused: {job.refusal}"
        ttl = get_connections().settings.worker.rq_failure_ttl
        with self.connection.pipeline() as pipe:
            if len(self.queues) == 1:
                pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            pipe.hset(job.key, mapping={"status": RQStatus.FAILED.value,
                                        "ended_at": utcformat(now()),
                                        "exc_info": zlib.compress(error.encode())})
            pipe.expire(job.key, ttl)
            pipe.zadd(queue.failed_job_registry.key, {job.id: current_timestamp() + ttl})
            Result.create_failure(job, ttl, exc_string=error, worker_name=self.name,
                                  pipeline=pipe)
            self.increment_failed_job_count(pipeline=pipe)
            pipe.execute()

    def _beat(self) -> None:
        next_beat = time.monotonic() + self.heartbeat_interval
        while True:
            # Wake at least every running_after, to announce jobs that run that long.
            time.sleep(min(self.running_after, max(0.0, next_beat - time.monotonic())))
            announce = self._announce
            if announce is not None and time.monotonic() >= announce[2]:
                job, report, _ = announce
                if self._beating is job:
                    self._announce = None
                    get_connections().writer.progress(report)
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + self.heartbeat_interval
            job, execution = self._beating, self.execution
            if job is None or execution is None:
                continue
            try:
                with self.connection.pipeline() as pipe:
                    super().heartbeat(self.heartbeat_ttl + 60, pipeline=pipe)
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
        if isinstance(job, RunnerJob) and job.refusal is not None:
            log.error("refused RQ job %s (found abandoned): %s", job.id, job.refusal)
            return False  # not ours to recover
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
