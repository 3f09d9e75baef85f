"""Worker reports applied in bulk by the data service (over nx-27017): every write is
conditional on the job's status and attempt, so replays and late reports change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def report(job_id: str, attempt: int, status: str | None = None, seconds: float = 0,
           **fields: Any) -> dict[str, Any]:
    at = (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    body = {"job_id": job_id, "attempt": attempt, "at": at, **fields}
    if status is not None:
        body["status"] = status
    return body


@pytest.fixture
def new_job(store: httpx.AsyncClient, user: str):
    async def make(status: str = "queued", **fields: Any) -> str:
        job_id = str(ObjectId())
        answer = await store.post("/jobs/bulk", json={"jobs": [
            {"id": job_id, "name": "echo", "user_id": user, "status": status, **fields}]})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"results": ["created"]}
        return job_id
    return make


async def apply(store: httpx.AsyncClient, *reports: dict[str, Any]) -> dict[str, Any]:
    answer = await store.post("/reports", json={"reports": list(reports)})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def job(store: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    return (await store.get(f"/job/{job_id}")).json()


async def test_a_batch_takes_a_job_from_queued_to_its_result(store, new_job):
    job_id = await new_job()
    batch = [report(job_id, 1, "running", 0, worker_id="w1", progress=0),
             report(job_id, 1, None, 1, progress=50),
             report(job_id, 1, "succeeded", 2, result={"ok": True})]
    assert (await apply(store, *batch))["applied"] == 1  # one write for all three
    done = await job(store, job_id)
    assert (done["status"], done["attempts"], done["progress"], done["result"]) == (
        "succeeded", 1, 100, {"ok": True})
    assert done["started_at"] == "2026-01-01T00:00:00Z"
    assert done["finished_at"] == "2026-01-01T00:00:02Z"
    assert done["worker_id"] == "w1"
    # The same batch again (a recorder that died before its ack): nothing changes.
    assert (await apply(store, *batch))["applied"] == 0
    assert await job(store, job_id) == done


async def test_reports_in_separate_batches_and_out_of_order(store, new_job):
    job_id = await new_job()
    await apply(store, report(job_id, 1, "running", 0))
    await apply(store, report(job_id, 1, None, 1, progress=60))
    await apply(store, report(job_id, 1, None, 2, progress=30))  # older progress, late
    assert (await job(store, job_id))["progress"] == 60
    await apply(store, report(job_id, 1, "retrying", 3, error="boom"))
    await apply(store, report(job_id, 2, "running", 4))
    # Attempt 1's end arriving again after attempt 2 started: ignored.
    assert (await apply(store, report(job_id, 1, "retrying", 3, error="boom")))["applied"] == 0
    assert (await apply(store, report(job_id, 1, None, 5, progress=90)))["applied"] == 0
    running = await job(store, job_id)
    assert (running["status"], running["attempts"], running["progress"]) == ("running", 2, 0)
    await apply(store, report(job_id, 2, "failed", 6, error="for good"))
    # A `running` that arrives after the end it led to changes nothing.
    assert (await apply(store, report(job_id, 2, "running", 4)))["applied"] == 0
    failed = await job(store, job_id)
    assert (failed["status"], failed["attempts"], failed["error"]) == ("failed", 2, "for good")


async def test_an_end_without_its_running_report_still_records_the_attempt(store, new_job):
    job_id = await new_job()
    await apply(store, report(job_id, 1, "succeeded", 2, result=1,
                              started_at="2026-01-01T00:00:01Z", worker_id="w"))
    done = await job(store, job_id)
    assert (done["status"], done["attempts"], done["started_at"]) == (
        "succeeded", 1, "2026-01-01T00:00:01Z")
    assert (await apply(store, report(job_id, 1, "running", 1)))["applied"] == 0


async def test_a_cancelled_job_keeps_its_status_whatever_the_worker_says(store, new_job):
    job_id = await new_job()
    assert (await store.put(f"/job/{job_id}", json={"status": "cancelled"})).status_code == 200
    applied = await apply(store, report(job_id, 1, "running"),
                          report(job_id, 1, "succeeded", 1, result=1))
    assert applied["applied"] == 0
    assert (await job(store, job_id))["status"] == "cancelled"


async def test_reports_of_an_unknown_job_change_nothing(store):
    assert (await apply(store, report(str(ObjectId()), 1, "running")))["applied"] == 0


async def test_a_result_mongodb_cannot_store_fails_the_job_with_the_reason(store, new_job):
    job_id = await new_job()
    answer = await apply(store, report(job_id, 1, "succeeded", result={"$set": 1}))
    assert answer["refused"] and "cannot be stored" in answer["refused"][0]
    failed = await job(store, job_id)
    assert failed["status"] == "failed" and "cannot be stored" in failed["error"]


@pytest.mark.parametrize(("body", "named"), [
    ({"reports": [{"job_id": "x", "attempt": 1, "at": "2026-01-01T00:00:00Z"}]}, "job_id"),
    ({"reports": [{"job_id": "a" * 24, "attempt": 1, "at": "2026-01-01T00:00:00Z",
                   "status": "bogus"}]}, "status"),
    ({"reports": [{"job_id": "a" * 24, "attempt": -1, "at": "2026-01-01T00:00:00Z"}]},
     "attempt"),
])
async def test_malformed_reports_are_a_400_naming_the_field(store, body, named):
    answer = await store.post("/reports", json=body)
    assert answer.status_code == 400 and named in answer.text


async def test_bulk_create_records_each_job_once(store, user):
    ids = [str(ObjectId()) for _ in range(3)]
    jobs = [{"id": i, "name": "echo", "user_id": user, "status": "queued"} for i in ids]
    first = await store.post("/jobs/bulk", json={"jobs": jobs[:2]})
    again = await store.post("/jobs/bulk", json={"jobs": jobs})
    assert first.json()["results"] == ["created", "created"]
    assert again.json()["results"] == ["exists", "exists", "created"]
    found = (await store.post("/jobs/query", json={"ids": ids})).json()
    assert sorted(j["id"] for j in found) == sorted(ids)
    assert {j["status"] for j in found} == {"queued"}


@pytest.mark.parametrize("status", ["running", "succeeded", "bogus"])
async def test_bulk_create_refuses_any_status_but_created_or_queued(store, user, status):
    answer = await store.post("/jobs/bulk", json={"jobs": [
        {"id": str(ObjectId()), "name": "echo", "user_id": user, "status": status}]})
    assert answer.status_code == 400 and "status" in answer.text


@pytest.mark.parametrize("odd", [".", "..", "%2e%2e", "...", "a..b"])
async def test_any_user_id_lists_its_own_jobs_and_never_changes_the_path(store, odd):
    job_id = str(ObjectId())
    created = await store.post("/jobs/bulk", json={"jobs": [
        {"id": job_id, "name": "echo", "user_id": odd, "status": "queued"}]})
    assert created.status_code == 200, created.text
    page = await store.get("/jobs", params={"user_id": odd})
    assert page.status_code == 200, page.text
    assert [item["id"] for item in page.json()["items"]] == [job_id]
