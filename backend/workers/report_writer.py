"""The worker's side of the report path: append to the report stream, never wait.

:class:`ReportWriter` appends one worker process's reports; :class:`AttemptReports` is
where one attempt's reports go, handed to the runner with the attempt
(:class:`backend.workers.middleware.base.JobRun`).

Each call is one Redis round trip (a pipeline), and none asks the data service
anything: the recorder applies the reports later, in batches
(:mod:`backend.dispatcher.recorder`). What a round trip carries:

* :meth:`ReportWriter.begin`: read the job's ``stop`` and ``done`` markers and report
  ``running``, together. A job that is stopped or done is then not run; the ``running``
  report appended with the check is refused by the store (the job is finished) or
  overtaken by the end the worker reports at once.
* :meth:`ReportWriter.progress`: a progress report (lost if Redis is away: the next one
  carries a newer value) and a fresh look at the ``stop`` marker.
* :meth:`ReportWriter.end`: how the attempt ended, and for a final end the ``done``
  marker. This one must not be lost, so it is sent again until Redis takes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from backend import markers
from backend.reports import Report, append_report

log = logging.getLogger("backend.workers.jobs")

# Backoff of an end report that Redis did not take: from 50 ms, doubling, at most 2 s.
_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 2.0


@dataclass(frozen=True)
class Begun:
    """What :meth:`ReportWriter.begin` found: run the job, or not and why."""

    stop: str | None = None  # the stop marker (cancelled, or void: reason)
    done: bool = False

    @property
    def run(self) -> bool:
        return self.stop is None and not self.done


class ReportWriter:
    """Appends one worker process's reports to the report stream."""

    def __init__(self, connection: redis.Redis, *, done_ttl: int,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.redis = connection
        self.done_ttl = done_ttl
        self._sleep = sleep

    def begin(self, report: Report) -> Begun:
        """Report ``running`` and read the job's markers in one round trip (the worker
        reads the markers while it prepares the job; this is for a run outside it)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(markers.stop_key(report.job_id))
            pipe.exists(markers.done_key(report.job_id))
            append_report(pipe, report)
            stop, done, _ = pipe.execute()
        return Begun(stop=stop.decode() if stop is not None else None, done=bool(done))

    def progress(self, report: Report) -> str | None:
        """Append a progress report (best effort); returns the job's stop marker, if set."""
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(markers.stop_key(report.job_id))
                append_report(pipe, report)
                stop, _ = pipe.execute()
        except redis.RedisError as exc:
            log.warning("job %s: progress report lost (Redis: %s)", report.job_id, exc)
            return None
        return stop.decode() if stop is not None else None

    def stop_marker(self, job_id: str) -> str | None:
        """The job's stop marker, or None (also when Redis cannot be asked)."""
        try:
            stop = self.redis.get(markers.stop_key(job_id))
        except redis.RedisError:
            return None
        return stop.decode() if stop is not None else None

    @staticmethod
    def append_end(pipe: redis.client.Pipeline, report: Report, done_ttl: int) -> None:
        """Add an end report (and for a final end the ``done`` marker) to ``pipe``."""
        append_report(pipe, report)
        if report.final:
            pipe.set(markers.done_key(report.job_id), b"1", ex=done_ttl)

    def send_end(self, report: Report, *, extra: Report | None = None) -> None:
        """One try of :meth:`end`; raises :class:`redis.RedisError` if Redis did not take it."""
        with self.redis.pipeline(transaction=True) as pipe:
            if extra is not None:
                append_report(pipe, extra)
            self.append_end(pipe, report, self.done_ttl)
            pipe.execute()

    def end(self, report: Report, *, extra: Report | None = None) -> None:
        """Append how the attempt ended (and ``extra`` before it), marking a final end
        ``done``; tries again until Redis takes it."""
        backoff, failures = _FIRST_BACKOFF, 0
        while True:
            try:
                self.send_end(report, extra=extra)
                return
            except redis.RedisError as exc:
                failures += 1
                if failures == 1 or failures % 30 == 0:
                    log.warning("job %s: Redis did not take its %s report (%s); trying "
                                "again", report.job_id, report.status, exc)
                self._sleep(backoff)
                backoff = min(_MAX_BACKOFF, backoff * 2)


class AttemptReports:
    """Where the reports of one attempt go, written as they come (a bare call of the
    runner). A :class:`~backend.workers.worker.TaskWorker` hands the runner its own
    (:class:`~backend.workers.worker.WorkerReports`): the markers read while it prepared
    the job, ``running`` held back for a short job, the end written with RQ's end of it.
    """

    def __init__(self, writer: ReportWriter) -> None:
        self.writer = writer

    def begin(self, running: Report) -> Begun:
        """Report ``running`` (or have it reported); what the job's markers say."""
        return self.writer.begin(running)

    def running_pending(self) -> bool:
        """Whether ``running`` is still held back (the next progress report says it)."""
        return False

    def withdraw_running(self) -> None:
        """Never report the held-back ``running`` (the attempt has said it, or ended)."""

    def progress(self, report: Report) -> str | None:
        """Append a progress report (best effort); the job's stop marker, if set."""
        return self.writer.progress(report)

    def stop_marker(self, job_id: str) -> str | None:
        """The job's stop marker, or None."""
        return self.writer.stop_marker(job_id)

    def end(self, report: Report, *, returns: bool) -> None:
        """Write how the attempt ended. ``returns``: the job function returns normally
        after it (RQ files the job finished), so it may go with RQ's end of the job."""
        self.writer.end(report)
