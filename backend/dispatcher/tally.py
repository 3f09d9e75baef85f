"""What the recorder notes about the jobs whose end it applied: the statistics of
``GET /api/v1/stats`` (:mod:`backend.stats`) and the dead-letter counter.

Only final reports are decoded (found by their status bytes, as the stream holds them);
the rest of a batch travels on as it came. A statistics write that fails is logged and
skipped: it never holds reports back.
"""

from __future__ import annotations

import logging

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend import metrics, stats
from backend.jobs import JobStatus
from backend.logs import job_context
from backend.reports import Report, decode_report

log = logging.getLogger("backend.dispatcher.recorder")

_FINAL = tuple(b'"status":"%s"' % str(status).encode() for status in stats.FINAL)
_TIMED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


def finish_of(report: Report) -> stats.Finish:
    """A final report as the statistics keep it."""
    task = report.task or (report.dead_letter.name if report.dead_letter else None)
    run_ms = wait_ms = None
    if report.started_at is not None and report.status in _TIMED:
        run_ms = (report.at - report.started_at).total_seconds() * 1000
        submitted = report.submitted_at
        if report.attempt == 1 and submitted is not None:
            wait_ms = (report.started_at - submitted).total_seconds() * 1000
    assert report.status is not None
    return stats.Finish(job_id=report.job_id, status=report.status, finished_at=report.at,
                        task=task, run_ms=run_ms, wait_ms=wait_ms, error=report.error)


def final_reports(reports: list[bytes]) -> list[Report]:
    found = []
    for raw in reports:
        if any(mark in raw for mark in _FINAL):
            try:
                report = decode_report(raw)
            except (msgspec.DecodeError, UnicodeDecodeError):
                continue  # refused and logged when applied
            if report.final:
                found.append(report)
    return found


async def note_finished(connection: Redis, reports: list[bytes]) -> int:
    """Note the ends among ``reports`` (applied just now) in the statistics."""
    finishes = [finish_of(report) for report in final_reports(reports)]
    try:
        return await stats.record(connection, finishes)
    except RedisError as exc:
        log.warning("the statistics miss %d finished jobs: %s", len(finishes), exc)
        return 0


def note_dead_letter(report: Report) -> None:
    """Count (and log) a failed job's message just put on the dead-letter queue."""
    message = report.dead_letter
    assert message is not None
    metrics.JOBS_DEAD_LETTERED.labels(message.name, message.executor).inc()
    with job_context(report.job_id, message.trace_id):
        log.info("job %s (%s) dead-lettered: %s", report.job_id, message.name,
                 (report.error or "failed")[:200])
