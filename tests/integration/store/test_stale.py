"""Stale jobs across users (``GET /job/stale``): one status, not updated for a while, oldest first.

The list spans every user of the shared store, so the jobs under test are made old by
dating their last update back a month (in the store's own collection, in-process): they
are then the oldest in the store, and the ages asked for pick exactly which of them
match. They are deleted again when the test ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import httpx
import pytest
from bson import ObjectId

from backend.jobs import JobStatus, utcnow
from backend.store.documents import collection
from tests.integration.store.conftest import MakeJob
from tests.problems import problem_of

EPOCH = (utcnow() - timedelta(days=30)).replace(microsecond=0)
MakeOld = Callable[..., Awaitable[str]]


def age_of(offset: float) -> float:
    """``older_than`` that matches jobs last updated before ``EPOCH + offset`` seconds."""
    return (utcnow() - (EPOCH + timedelta(seconds=offset))).total_seconds()


@pytest.fixture
async def make_old(make_job: MakeJob, store: httpx.AsyncClient) -> AsyncIterator[MakeOld]:
    """Create a job in ``status`` last updated ``offset`` seconds after EPOCH."""
    made: list[str] = []

    async def make(status: JobStatus, offset: float, **fields: object) -> str:
        job_id = await make_job(status, **fields)
        made.append(job_id)
        when = EPOCH + timedelta(seconds=offset)
        await collection().update_one(
            {"_id": ObjectId(job_id)}, {"$set": {"updated_at": when}})
        return job_id

    yield make
    for job_id in made:
        await store.delete(f"/job/{job_id}")


async def _stale(store: httpx.AsyncClient, **params: object) -> list[dict]:
    response = await store.get("/job/stale", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_only_jobs_in_the_status_and_older_than_asked_oldest_first(
        store: httpx.AsyncClient, make_old: MakeOld, make_job: MakeJob) -> None:
    second = await make_old(JobStatus.CREATED, 10, params={"n": 2}, executor="priority")
    first = await make_old(JobStatus.CREATED, 0)
    queued = await make_old(JobStatus.QUEUED, 20)
    await make_old(JobStatus.CREATED, 30)
    fresh = await make_job(JobStatus.CREATED)

    jobs = await _stale(store, status="created", older_than=age_of(15))
    assert [job["id"] for job in jobs] == [first, second]
    # Each item is the whole job: what a sweep needs to rebuild its queue message.
    assert (jobs[1]["status"], jobs[1]["name"], jobs[1]["executor"], jobs[1]["params"]) == (
        "created", "echo", "priority", {"n": 2})
    assert jobs[1]["updated_at"] == f"{EPOCH + timedelta(seconds=10):%Y-%m-%dT%H:%M:%S}Z"

    assert [job["id"] for job in await _stale(store, status="created",
                                              older_than=age_of(5))] == [first]
    assert [job["id"] for job in await _stale(store, status="queued",
                                              older_than=age_of(25))] == [queued]

    # A job updated just now is not stale an hour later, but is with no age asked.
    hour = [job["id"] for job in await _stale(store, status="created", older_than=3600,
                                              limit=1000)]
    assert first in hour and fresh not in hour
    anything = await _stale(store, status="created", older_than=0, limit=2)
    assert [job["id"] for job in anything] == [first, second]


async def test_an_update_makes_a_job_fresh_again(store: httpx.AsyncClient,
                                                 make_old: MakeOld) -> None:
    first = await make_old(JobStatus.CREATED, 0)
    second = await make_old(JobStatus.CREATED, 10)
    moved = await store.put(f"/job/{first}", json={"description": "touched"})
    assert moved.status_code == 200, moved.text
    assert [job["id"] for job in await _stale(store, status="created",
                                              older_than=age_of(15))] == [second]


async def test_limit_keeps_the_oldest(store: httpx.AsyncClient, make_old: MakeOld) -> None:
    ids = [await make_old(JobStatus.CREATED, offset) for offset in (3, 1, 2, 0)]
    oldest_first = [ids[3], ids[1], ids[2], ids[0]]
    for limit in (1, 3, 4):
        jobs = await _stale(store, status="created", older_than=age_of(10), limit=limit)
        assert [job["id"] for job in jobs] == oldest_first[:limit]


async def test_nothing_stale_is_an_empty_list(store: httpx.AsyncClient, make_job: MakeJob) -> None:
    await make_job(JobStatus.RETRYING)
    assert await _stale(store, status="retrying", older_than=age_of(0)) == []


@pytest.mark.parametrize(("params", "field"), [
    ({"older_than": 60}, "status"),
    ({"status": "succeeded", "older_than": 60}, "status"),
    ({"status": "cancelled", "older_than": 60}, "status"),
    ({"status": "stuck", "older_than": 60}, "status"),
    ({"status": "created"}, "older_than"),
    ({"status": "created", "older_than": -1}, "older_than"),
    ({"status": "created", "older_than": "soon"}, "older_than"),
    ({"status": "created", "older_than": "nan"}, "older_than"),
    ({"status": "created", "older_than": "inf"}, "older_than"),
    ({"status": "created", "older_than": 10**12}, "older_than"),
    ({"status": "created", "older_than": 60, "limit": 0}, "limit"),
    ({"status": "created", "older_than": 60, "limit": 1001}, "limit"),
    ({"status": "created", "older_than": 60, "limit": "all"}, "limit"),
])
async def test_bad_query_is_a_400_naming_the_field(store: httpx.AsyncClient,
                                                   params: dict[str, object], field: str) -> None:
    response = await store.get("/job/stale", params=params)
    assert response.status_code == 400, response.text
    body = problem_of(response, 400)
    assert field in body["detail"] or any(field in entry["field"]
                                          for entry in body["errors"]), body
