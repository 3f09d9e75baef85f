"""The data service's part of a job's trail: a log line, and with tracing on a span in the
job's trace, for each final report it applies (the report names the job's trace)."""

from __future__ import annotations

import logging

from opentelemetry.trace import SpanKind

from backend import tracing
from backend.logs import job_context
from backend.reports import Report

log = logging.getLogger("backend.store.reports")


def note_applied(reports: list[Report]) -> None:
    """Log (and trace) the final reports of a batch just written."""
    for report in reports:
        if not report.final:
            continue
        with job_context(report.job_id, report.trace_id), tracing.span(
                "apply report", traceparent=report.traceparent, kind=SpanKind.SERVER,
                attributes={"taskbroker.job_id": report.job_id,
                            "taskbroker.status": str(report.status),
                            "taskbroker.attempt": report.attempt}):
            log.info("job %s: %s report of attempt %d applied", report.job_id, report.status,
                     report.attempt)
