"""The data service takes the seed's Job body on create, keeps ``rerun_of``, and answers
a list as summaries when asked."""

from __future__ import annotations

import httpx
import pytest
from bson import ObjectId

from backend.jobs import SUMMARY_ERROR_CHARS


async def test_create_takes_the_seed_job_body_with_status_created(
        store: httpx.AsyncClient, user: str) -> None:
    seed_body = {"name": "echo", "user_id": user, "description": "from an old client",
                 "estimated_time": 3, "params": {"x": 1}, "status": "created"}
    created = await store.post("/job/", json=seed_body)
    assert created.status_code == 201, created.text
    job = (await store.get(f"/job/{created.json()['id']}")).json()
    assert (job["status"], job["description"], job["params"], job["estimated_time"]) == (
        "created", "from an old client", {"x": 1}, 3)


@pytest.mark.parametrize("status", ["queued", "running", "succeeded", "failed", "done", ""])
async def test_any_other_status_on_create_is_a_400_saying_only_created(
        store: httpx.AsyncClient, user: str, status: str) -> None:
    answer = await store.post("/job/", json={"name": "echo", "user_id": user, "status": status})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert "only status accepted on create" in body["detail"] and '"created"' in body["detail"]
    assert body["errors"][0]["field"] == "status"
    assert (await store.get("/jobs", params={"user_id": user})).json()["total"] == 0


async def test_rerun_of_is_kept_and_a_summary_list_leaves_params_and_result_out(
        store: httpx.AsyncClient, user: str) -> None:
    first, second = str(ObjectId()), str(ObjectId())
    recorded = await store.post("/jobs/bulk", json={"jobs": [
        {"id": first, "name": "echo", "user_id": user, "params": {"blob": "x" * 10_000}},
        {"id": second, "name": "echo", "user_id": user, "rerun_of": first,
         "params": {"blob": "y" * 10_000}}]})
    assert recorded.json()["results"] == ["created", "created"]
    await store.put(f"/job/{first}", json={"status": "running"})
    await store.put(f"/job/{first}", json={"status": "failed", "error": "Z" * 1000,
                                           "result": {"partial": "r" * 10_000}})
    assert (await store.get(f"/job/{second}")).json()["rerun_of"] == first

    summary = await store.get("/jobs", params={"user_id": user, "summary": "true"})
    assert summary.status_code == 200, summary.text
    assert len(summary.content) < 3000
    items = {item["id"]: item for item in summary.json()["items"]}
    assert "params" not in items[first] and "result" not in items[first]
    assert items[second]["rerun_of"] == first and items[first]["rerun_of"] is None
    assert len(items[first]["error"]) == SUMMARY_ERROR_CHARS
    assert items[first]["status"] == "failed" and items[first]["finished_at"].endswith("Z")
    full = (await store.get("/jobs", params={"user_id": user})).json()["items"]
    assert {item["id"]: item["params"]["blob"][0] for item in full} == {first: "x", second: "y"}
