"""Status moves over HTTP: legal ones apply, illegal ones are a 409 with the current status."""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest

from backend.jobs import TERMINAL_STATUSES, JobStatus, can_move
from tests.integration.store.conftest import MakeJob

PAIRS = list(itertools.product(JobStatus, JobStatus))


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
async def test_every_move_follows_the_transition_table(
        store: httpx.AsyncClient, make_job: MakeJob, current: JobStatus,
        target: JobStatus) -> None:
    job_id = await make_job(current)
    before = (await store.get(f"/job/{job_id}")).json()
    response = await store.put(f"/job/{job_id}", json={"status": target, "progress": 50})
    after = (await store.get(f"/job/{job_id}")).json()
    if can_move(current, target):
        assert response.status_code == 200, response.text
        assert response.json() == after
        assert after["status"] == target and after["progress"] == 50
        assert (after["finished_at"] is not None) == (target in TERMINAL_STATUSES)
    else:
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["current_status"] == current and body["status"] == 409
        assert current in body["detail"]
        assert after == before


@pytest.mark.parametrize("finished", sorted(TERMINAL_STATUSES))
async def test_finished_jobs_never_change(store: httpx.AsyncClient, make_job: MakeJob,
                                          finished: JobStatus) -> None:
    job_id = await make_job(finished)
    before = (await store.get(f"/job/{job_id}")).json()
    for body in ({"progress": 99}, {"result": "late"}, {"error": "late"}, {"attempts": 9},
                 {"description": "edited"}, {"status": "running", "progress": 1}):
        response = await store.put(f"/job/{job_id}", json=body)
        assert response.status_code == 409, (body, response.text)
        assert response.json()["current_status"] == finished
    assert (await store.get(f"/job/{job_id}")).json() == before


async def test_timestamps_follow_the_lifecycle(store: httpx.AsyncClient,
                                               make_job: MakeJob) -> None:
    job_id = await make_job("queued")
    queued = (await store.get(f"/job/{job_id}")).json()
    assert queued["started_at"] is None and queued["finished_at"] is None
    running = (await store.put(f"/job/{job_id}", json={"status": "running"})).json()
    assert running["started_at"] == running["updated_at"] >= queued["updated_at"]
    # A repeated `running` report (progress, a redelivered message) keeps started_at.
    await asyncio.sleep(0.01)
    again = (await store.put(f"/job/{job_id}", json={"status": "running", "progress": 5})).json()
    assert again["started_at"] == running["started_at"]
    assert again["updated_at"] > running["updated_at"]
    done = (await store.put(f"/job/{job_id}", json={"status": "succeeded"})).json()
    assert done["finished_at"] == done["updated_at"] >= again["updated_at"]
    assert done["started_at"] == running["started_at"]
    assert done["created_at"] == queued["created_at"]


async def test_a_new_attempt_restarts_started_at(store: httpx.AsyncClient,
                                                 make_job: MakeJob) -> None:
    job_id = await make_job("retrying")
    first = (await store.get(f"/job/{job_id}")).json()["started_at"]
    await asyncio.sleep(0.01)
    second = (await store.put(f"/job/{job_id}", json={"status": "running",
                                                      "attempts": 2})).json()
    assert second["started_at"] > first


async def test_concurrent_conflicting_moves_exactly_one_wins(store: httpx.AsyncClient,
                                                              make_job: MakeJob) -> None:
    for _ in range(10):
        job_id = await make_job("running")
        targets = ["succeeded", "cancelled", "failed", "succeeded", "cancelled"]
        answers = await asyncio.gather(*(
            store.put(f"/job/{job_id}", json={"status": target}) for target in targets))
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [200, 409, 409, 409, 409], [a.text for a in answers]
        (winner,) = [a.json()["status"] for a in answers if a.status_code == 200]
        assert {a.json()["current_status"] for a in answers if a.status_code == 409} == {winner}
        assert (await store.get(f"/job/{job_id}")).json()["status"] == winner
