"""The one table of legal status moves (backend.jobs.TRANSITIONS)."""

from __future__ import annotations

import itertools

import pytest

from backend.jobs import (
    NEW_JOB_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    JobStatus,
    can_move,
    sources_of,
)

ACTIVE = [status for status in JobStatus if status not in TERMINAL_STATUSES]


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(JobStatus)
    assert TERMINAL_STATUSES == {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


@pytest.mark.parametrize("finished", sorted(TERMINAL_STATUSES))
def test_a_finished_job_never_moves(finished: JobStatus) -> None:
    assert not any(can_move(finished, target) for target in JobStatus)


@pytest.mark.parametrize("status", ACTIVE)
def test_an_active_job_can_always_be_cancelled_or_failed_and_report_again(
        status: JobStatus) -> None:
    assert can_move(status, JobStatus.CANCELLED)
    assert can_move(status, JobStatus.FAILED)
    assert can_move(status, status)


def test_only_a_running_job_can_succeed_or_retry() -> None:
    assert sources_of(JobStatus.SUCCEEDED) == [JobStatus.RUNNING]
    assert set(sources_of(JobStatus.RETRYING)) == {JobStatus.RUNNING, JobStatus.RETRYING}


def test_nothing_moves_back_to_created() -> None:
    assert sources_of(JobStatus.CREATED) == [JobStatus.CREATED]


def test_a_worker_may_report_running_before_the_kernel_reports_queued() -> None:
    assert can_move(JobStatus.CREATED, JobStatus.RUNNING)
    assert not can_move(JobStatus.RUNNING, JobStatus.QUEUED)
    assert can_move(JobStatus.RETRYING, JobStatus.QUEUED)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(JobStatus, JobStatus)))
def test_sources_of_agrees_with_can_move(current: JobStatus, target: JobStatus) -> None:
    assert (current in sources_of(target)) == can_move(current, target)


def test_a_scheduled_job_waits_then_runs_or_is_cancelled_and_nothing_goes_back_to_it() -> None:
    assert TRANSITIONS[JobStatus.SCHEDULED] == {
        JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED,
        JobStatus.CANCELLED}
    # Only a new job is scheduled: no job that was queued or ran is put back to wait.
    assert sources_of(JobStatus.SCHEDULED) == [JobStatus.SCHEDULED]
    assert JobStatus.SCHEDULED in NEW_JOB_STATUSES
    assert not can_move(JobStatus.SCHEDULED, JobStatus.SUCCEEDED)


def test_every_status_is_reachable_from_a_new_job() -> None:
    reached, frontier = set(NEW_JOB_STATUSES), list(NEW_JOB_STATUSES)
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(JobStatus)


def test_the_queue_wait_of_a_scheduled_job_counts_from_its_run_at():
    from datetime import timedelta

    from backend.jobs import QueueMessage, utcnow

    submitted = utcnow()
    plain = QueueMessage(job_id="a" * 24, name="echo", submitted_at=submitted)
    assert plain.ready_at == submitted
    later = submitted + timedelta(seconds=30)
    scheduled = QueueMessage(job_id="a" * 24, name="echo", submitted_at=submitted,
                             run_at=later.replace(tzinfo=None))
    assert scheduled.ready_at == later  # a time without a zone is UTC
    past = QueueMessage(job_id="a" * 24, name="echo", submitted_at=submitted,
                        run_at=submitted - timedelta(seconds=5))
    assert past.ready_at == submitted
