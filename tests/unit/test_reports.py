"""The report rules (derived from TRANSITIONS) and how a batch folds into writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.jobs import TERMINAL_STATUSES, JobStatus, can_move
from backend.reports import REPORTED_STATUSES, AttemptGuard, Report, report_rule
from backend.store.job_writes import plan

UNFINISHED = {s for s in JobStatus if s not in TERMINAL_STATUSES}
T0 = datetime(2026, 1, 1, tzinfo=UTC)
A, B = "a" * 24, "b" * 24


def report(job_id: str, attempt: int, status: JobStatus | None = None, seconds: int = 0,
           **fields: object) -> Report:
    return Report(job_id=job_id, attempt=attempt, at=T0 + timedelta(seconds=seconds),
                  status=status, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", sorted(REPORTED_STATUSES - {JobStatus.RUNNING}))
def test_an_end_applies_to_any_unfinished_job_of_this_attempt_or_an_older_one(status):
    rule = report_rule(status)
    assert rule.statuses == UNFINISHED
    assert rule.attempts is AttemptGuard.NOT_OLDER


def test_each_end_is_legal_directly_or_through_running():
    for status in REPORTED_STATUSES - {JobStatus.RUNNING}:
        for current in report_rule(status).statuses:
            assert can_move(current, status) or (
                can_move(current, JobStatus.RUNNING) and can_move(JobStatus.RUNNING, status))


def test_running_starts_a_newer_attempt_only():
    rule = report_rule(JobStatus.RUNNING)
    assert rule.statuses == UNFINISHED  # over a lost attempt's `running` too
    assert rule.attempts is AttemptGuard.NEWER


def test_progress_belongs_to_the_running_attempt():
    rule = report_rule(None)
    assert rule.statuses == {JobStatus.RUNNING} and rule.attempts is AttemptGuard.SAME


def test_a_worker_never_reports_created_or_queued():
    for status in (JobStatus.CREATED, JobStatus.QUEUED):
        with pytest.raises(ValueError):
            report_rule(status)


def test_a_short_jobs_reports_fold_into_one_write():
    writes, refused = plan([
        report(A, 1, JobStatus.RUNNING, 0, worker_id="w"),
        report(A, 1, None, 1, progress=40.0),
        report(A, 1, JobStatus.SUCCEEDED, 2, result={"ok": 1}),
    ])
    assert refused == [] and len(writes) == 1
    write = writes[0]
    assert (write.status, write.attempt, write.progress) == (JobStatus.SUCCEEDED, 1, 100.0)
    assert write.fields["started_at"] == T0
    assert write.fields["finished_at"] == T0 + timedelta(seconds=2)
    assert write.fields["result"] == {"ok": 1} and write.fields["worker_id"] == "w"


def test_attempts_and_jobs_keep_their_own_writes_in_order():
    writes, _ = plan([
        report(A, 1, JobStatus.RUNNING),
        report(B, 1, JobStatus.RUNNING),
        report(A, 1, JobStatus.RETRYING, error="boom"),
        report(A, 2, JobStatus.RUNNING),
        report(B, 1, None, progress=10.0),
        report(A, 2, JobStatus.SUCCEEDED, result=None),
    ])
    assert [(w.job_id, w.attempt, w.status) for w in writes] == [
        (A, 1, JobStatus.RETRYING), (B, 1, JobStatus.RUNNING), (A, 2, JobStatus.SUCCEEDED)]
    assert writes[1].progress == 10.0


def test_a_result_the_store_cannot_keep_becomes_a_failure():
    writes, refused = plan([report(A, 1, JobStatus.SUCCEEDED, result={"$where": 1})])
    assert writes[0].status is JobStatus.FAILED
    assert "cannot be stored" in writes[0].fields["error"] and refused


def test_any_unfinished_status_is_written_as_no_finished_at():
    from backend.store.documents import status_filter

    assert status_filter(report_rule(JobStatus.SUCCEEDED).statuses) == {"finished_at": None}
    assert status_filter(report_rule(None).statuses) == {"status": "running"}
