"""Re-running a finished job: a new job like it, which names the one it re-runs."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.api.conftest import Kernel, queue_of

pytestmark = pytest.mark.parametrize("backend", ["redis"])


async def finished_job(kernel: Kernel, store: httpx.AsyncClient, user: str, status: str,
                       ) -> str:
    answer = await kernel.submit(user, "wordcount", executor="priority", description="count",
                                 params={"text": "a b a"})
    assert answer.status_code == 200, answer.text
    job_id = answer.json()["job_id"]
    await store.put(f"/job/{job_id}", json={"status": "running"})
    done = await store.put(f"/job/{job_id}", json={"status": status, "error": "disk full"})
    assert done.status_code == 200, done.text
    return job_id


async def test_rerun_of_a_failed_job_makes_a_new_one_like_it(
        kernel: Kernel, store: httpx.AsyncClient, user: str) -> None:
    original = await finished_job(kernel, store, user, "failed")
    async with queue_of(kernel.settings) as queue:
        for delivery in await queue.receive(wait_seconds=2):  # the original's message
            await queue.ack(delivery)
        answer = await kernel.http.post(f"/api/v1/jobs/{original}/rerun")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == 200
        new_id = answer.json()["job_id"]
        assert new_id != original
        [delivery] = await queue.receive(wait_seconds=5)
        assert (delivery.message.job_id, delivery.message.name, delivery.message.executor,
                delivery.message.params) == (new_id, "wordcount", "priority", {"text": "a b a"})
    job = (await kernel.http.get(f"/api/v1/jobs/{new_id}")).json()
    assert (job["status"], job["rerun_of"], job["name"], job["executor"], job["params"],
            job["description"], job["estimated_time"], job["user_id"], job["error"]) == (
        "queued", original, "wordcount", "priority", {"text": "a b a"}, "count", 1, user, None)
    assert (await kernel.http.get(f"/api/v1/jobs/{original}")).json()["rerun_of"] is None
    listed = (await kernel.http.get("/api/v1/jobs")).json()["items"]
    assert [(item["id"], item["rerun_of"]) for item in listed] == [(new_id, original),
                                                                   (original, None)]


async def test_rerun_of_an_unfinished_job_is_a_409(kernel: Kernel, user: str) -> None:
    job_id = (await kernel.submit(user)).json()["job_id"]
    answer = await kernel.http.post(f"/api/v1/jobs/{job_id}/rerun")
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert body["current_status"] == "queued"
    assert "finished" in body["detail"]
    assert (await kernel.http.get("/api/v1/jobs")).json()["total"] == 1  # nothing new


async def test_rerun_of_another_users_job_is_a_404(kernel: Kernel, store: httpx.AsyncClient,
                                                    user: str) -> None:
    job_id = await finished_job(kernel, store, user, "succeeded")
    stranger = await kernel.sign_in(f"{user}-x")
    answer = await stranger.post(f"/api/v1/jobs/{job_id}/rerun")
    assert answer.status_code == 404, answer.text
    missing = await kernel.http.post("/api/v1/jobs/0123456789abcdef01234567/rerun")
    assert missing.status_code == 404
    bad = await kernel.http.post("/api/v1/jobs/nope/rerun")
    assert bad.status_code == 400 and "job_id" in bad.json()["detail"]
    # An admin may re-run anyone's job; the new job stays its owner's.
    admin = await kernel.sign_in(f"{user}-admin", role="admin")
    rerun = await admin.post(f"/api/v1/jobs/{job_id}/rerun")
    assert rerun.status_code == 200, rerun.text
    job = (await store.get(f"/job/{rerun.json()['job_id']}")).json()
    assert (job["user_id"], job["rerun_of"]) == (user, job_id)
