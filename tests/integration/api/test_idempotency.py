"""Idempotent submits: the Idempotency-Key header makes a retried submit safe."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.integration.api.conftest import Kernel, OpenKernel, queue_of
from tests.problems import problem_of

pytestmark = pytest.mark.parametrize("backend", ["redis"])

SUBMIT = "/api/v1/job_executor/async"


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def test_racing_submits_with_one_key_make_one_job(
        kernel: Kernel, store: httpx.AsyncClient, user: str) -> None:
    body = {"job_name": "echo", "estimated_time": 1, "params": {"a": 1, "b": 2}}
    # The same body with its keys in another order is the same request.
    same = {"params": {"b": 2, "a": 1}, "estimated_time": 1, "job_name": "echo"}
    key = f"order-{uuid.uuid4()}"
    answers = await asyncio.gather(*(kernel.http.post(SUBMIT, json=body if n % 2 else same,
                                                      headers=keyed(key)) for n in range(6)))
    assert [answer.status_code for answer in answers] == [200] * 6, [a.text for a in answers]
    assert len({answer.json()["job_id"] for answer in answers}) == 1
    assert (await store.get("/jobs", params={"user_id": user})).json()["total"] == 1
    async with queue_of(kernel.settings) as queue:
        assert await queue.depth() == 1  # and one message


async def test_same_key_with_another_body_is_a_422(kernel: Kernel, store: httpx.AsyncClient,
                                                   user: str) -> None:
    first = await kernel.http.post(SUBMIT, json={"job_name": "echo", "estimated_time": 1},
                                   headers=keyed("k-1"))
    assert first.status_code == 200, first.text
    for body, query in (({"job_name": "echo", "estimated_time": 2}, {}),
                        ({"job_name": "echo", "estimated_time": 1}, {"executor": "priority"})):
        other = await kernel.http.post(SUBMIT, json=body, params=query, headers=keyed("k-1"))
        assert other.status_code == 422, other.text
        assert "different request" in other.json()["detail"]
        assert problem_of(other)["errors"][0] == {
            "field": "Idempotency-Key", "in": "header", "message": other.json()["detail"]}
    assert (await store.get("/jobs", params={"user_id": user})).json()["total"] == 1


async def test_a_key_is_per_user(kernel: Kernel, store: httpx.AsyncClient, user: str) -> None:
    body = {"job_name": "echo", "estimated_time": 1}
    mine = await kernel.http.post(SUBMIT, json=body, headers=keyed("shared-key"))
    other = await kernel.sign_in(f"{user}-b")
    theirs = await other.post(SUBMIT, json=body, headers=keyed("shared-key"))
    assert mine.status_code == theirs.status_code == 200, theirs.text
    assert mine.json()["job_id"] != theirs.json()["job_id"]


async def test_after_the_ttl_the_key_makes_a_new_job(open_kernel: OpenKernel,
                                                    store: httpx.AsyncClient, user: str) -> None:
    kernel = await open_kernel(IDEMPOTENCY_TTL="1")
    body = {"job_name": "echo", "estimated_time": 1}
    first = (await kernel.http.post(SUBMIT, json=body, headers=keyed("k"))).json()["job_id"]
    again = (await kernel.http.post(SUBMIT, json=body, headers=keyed("k"))).json()["job_id"]
    assert again == first
    await asyncio.sleep(1.5)
    later = await kernel.http.post(SUBMIT, json=body, headers=keyed("k"))
    assert later.status_code == 200 and later.json()["job_id"] != first
    assert (await store.get("/jobs", params={"user_id": user})).json()["total"] == 2


async def test_a_failed_first_submit_releases_the_key(open_kernel: OpenKernel,
                                                      store: httpx.AsyncClient,
                                                      user: str) -> None:
    kernel = await open_kernel(DATA_SERVICE_DEADLINE="0.5")
    body = {"job_name": "echo", "estimated_time": 1}
    kernel.break_data_service()
    failed = await kernel.http.post(SUBMIT, json=body, headers=keyed("retry-me"))
    assert failed.status_code == 503, failed.text
    void = failed.json()["job_id"]
    kernel.app.state.client.base_url = kernel.env["DATA_SERVICE_URL"]  # the store is back
    retried = await kernel.http.post(SUBMIT, json=body, headers=keyed("retry-me"))
    assert retried.status_code == 200, retried.text
    assert retried.json()["job_id"] != void
    job = (await store.get(f"/job/{retried.json()['job_id']}")).json()
    assert job["status"] == "queued"
    # A refused first request (429 here) never holds the key either.
    limited = await open_kernel(MAX_UNFINISHED_JOBS_PER_USER="1")
    over = await limited.http.post(SUBMIT, json=body, headers=keyed("after-429"))
    assert over.status_code == 429, over.text
    await store.put(f"/job/{retried.json()['job_id']}", json={"status": "cancelled"})
    await limited.app.state.redis.delete(f"taskbroker:user:{user}:unfinished")
    assert (await limited.http.post(SUBMIT, json=body,
                                    headers=keyed("after-429"))).status_code == 200


@pytest.mark.parametrize("key", ["", "x" * 129, "tab\there", "caf\u00e9"])
async def test_a_malformed_key_is_a_400(kernel: Kernel, store: httpx.AsyncClient, user: str,
                                        key: str) -> None:
    raw = key.encode("utf-8")
    answer = await kernel.http.post(SUBMIT, json={"job_name": "echo", "estimated_time": 1},
                                    headers=[(b"Idempotency-Key", raw)])
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert "Idempotency-Key" in body["detail"] and "printable ASCII" in body["detail"]
    assert body["errors"][0]["field"] == "Idempotency-Key" and body["errors"][0]["in"] == "header"
    assert (await store.get("/jobs", params={"user_id": user})).json()["total"] == 0
