"""A data service that is down when jobs end: their results and failures arrive once it is back.

Real processes (Redis Stream queue): the data service is stopped while two jobs run and
started again on the same port after both ended; its MongoDB-wire server keeps running.
"""

from __future__ import annotations

import pytest
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus

from backend.workers.outbox import OUTBOX_KEY
from tests.e2e.conftest import System, wait_for

pytestmark = pytest.mark.e2e


def _rq_status(system: System, job_id: str) -> RQStatus:
    return RQJob.fetch(job_id, connection=system.redis).get_status()


def test_jobs_that_end_while_the_data_service_is_down_are_recorded_when_it_is_back(
        system: System):
    # A short deadline and fewer reports: each report the task makes while the data
    # service is down gives up quickly instead of stretching the task by seconds.
    system.workers.stop()
    system.start_workers(DATA_SERVICE_DEADLINE="0.3", REPORT_INTERVAL="2")
    done_id = system.submit("simulate", {"duration": 3}, estimated_time=30)
    # Runs past its timeout, max(JOB_TIMEOUT_MIN, 4 s x JOB_TIMEOUT_FACTOR) = 8 s: fails for good.
    runaway_id = system.submit("simulate", {"duration": 60}, estimated_time=4)
    system.wait_status(done_id, "running")
    system.wait_status(runaway_id, "running")

    system.store.stop()
    wait_for(lambda: _rq_status(system, done_id) == RQStatus.FINISHED
             and _rq_status(system, runaway_id) == RQStatus.FAILED, 90, "both jobs to end in RQ")
    pending = {key.decode() for key in system.redis.hkeys(OUTBOX_KEY)}
    assert {done_id, runaway_id} <= pending  # nothing recorded yet, nothing lost

    system.start("store", "backend.store", "--port", system.env["STORE_PORT"]).wait_http(
        f"{system.store_url}/readyz", 60)
    done = system.wait_final(done_id, 60)
    assert done["status"] == "succeeded" and done["result"] == {"slept": 3.0, "steps": 15}
    assert done["attempts"] == 1 and done["progress"] == 100
    runaway = system.wait_final(runaway_id, 60)
    assert runaway["status"] == "failed" and "timeout" in runaway["error"]
    assert runaway["attempts"] == 1
    wait_for(lambda: runaway_id in system.dead_letter_ids(), 30, "the runaway's dead letter")
    wait_for(lambda: system.redis.hlen(OUTBOX_KEY) == 0, 30, "the outbox to empty")
