"""Batch submit: up to 100 jobs in one request, each item checked like a single submit,
the valid ones recorded with one data service call and queued with the batch send."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import httpx
import pytest

from backend.jobs import JobStatus
from backend.queues import StandardQueue
from tests.integration.api.conftest import Kernel, OpenKernel, queue_of
from tests.problems import problem_of

BATCH = "/api/v1/jobs/batch"


def good(n: int, **fields: Any) -> dict[str, Any]:
    return {"job_name": "echo", "estimated_time": 1, "params": {"n": n}, **fields}


def count_store_calls(kernel: Kernel) -> list[int]:
    """Counts (and sizes) the kernel's calls that record jobs in the data service."""
    client = kernel.app.state.client
    record = client.create_jobs
    calls: list[int] = []

    async def counted(jobs: Any) -> list[str]:
        calls.append(len(jobs))
        return await record(jobs)

    client.create_jobs = counted
    return calls


async def drain(queue: StandardQueue, want: int) -> list[Any]:
    messages: list[Any] = []
    for _ in range(30):
        deliveries = await queue.receive(max_messages=100, wait_seconds=1)
        messages += [delivery.message for delivery in deliveries]
        await queue.ack_many(deliveries)
        if len(messages) >= want:
            break
    return messages


async def test_a_batch_of_100_with_3_bad_items_records_97_in_one_call(
        kernel: Kernel, store: httpx.AsyncClient, user: str) -> None:
    jobs: list[Any] = [good(n) for n in range(100)]
    jobs[7] = good(7, job_name="no-such-task")
    jobs[40] = good(40, estimated_time="5")         # strictly typed: not a number
    jobs[93] = good(93, executor="gpu")             # an executor nobody runs
    calls = count_store_calls(kernel)
    answer = await kernel.http.post(BATCH, json={"jobs": jobs})
    assert answer.status_code == 207, answer.text
    body = answer.json()
    assert (body["accepted"], body["refused"]) == (97, 3)
    results = body["results"]
    assert [result["index"] for result in results] == list(range(100))
    refused = {result["index"]: result for result in results if "job_id" not in result}
    assert set(refused) == {7, 40, 93}
    assert refused[7]["status"] == 422 and "echo" in refused[7]["detail"]
    assert refused[7]["title"] == HTTPStatus(422).phrase
    assert refused[7]["errors"][0]["field"] == "job_name" and "echo" in refused[7]["errors"][0][
        "message"]
    assert refused[40]["status"] == 400 and "estimated_time" in refused[40]["detail"]
    assert refused[40]["errors"][0]["field"] == "estimated_time"
    assert refused[93]["status"] == 422 and refused[93]["errors"][0]["field"] == "executor"
    assert refused[93]["errors"][0]["in"] == "query"
    ids = [result["job_id"] for result in results if "job_id" in result]
    assert len(set(ids)) == 97
    assert calls == [97]  # one data service call for the whole batch

    listed = (await store.get("/jobs", params={"user_id": user, "limit": 100})).json()
    assert listed["total"] == 97
    assert {job["status"] for job in listed["items"]} == {JobStatus.QUEUED}
    async with queue_of(kernel.settings) as queue:
        messages = await drain(queue, 97)
    assert sorted(message.job_id for message in messages) == sorted(ids)
    by_id = {message.job_id: message for message in messages}
    assert by_id[results[0]["job_id"]].params == {"n": 0}


@pytest.mark.parametrize("backend", ["redis"])
async def test_an_all_good_batch_is_a_200_with_executors_per_item(
        kernel: Kernel, user: str) -> None:
    answer = await kernel.http.post(BATCH, params={"executor": "priority"}, json={"jobs": [
        good(0), good(1, executor="standard"), good(2, description="third")]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["refused"]) == (3, 0)
    jobs = [(await kernel.http.get(f"/api/v1/jobs/{result['job_id']}")).json()
            for result in body["results"]]
    assert [job["executor"] for job in jobs] == ["priority", "standard", "priority"]
    assert [job["params"] for job in jobs] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert jobs[2]["description"] == "third" and {job["user_id"] for job in jobs} == {user}


@pytest.mark.parametrize("backend", ["redis"])
@pytest.mark.parametrize(("content", "status", "named"), [
    pytest.param({"jobs": [good(n) for n in range(101)]}, 413, "1 to 100", id="101-items"),
    pytest.param({"jobs": []}, 400, "1 to 100", id="no-items"),
    pytest.param({}, 400, "jobs", id="no-jobs-field"),
    pytest.param([good(0)], 400, "JSON object", id="not-an-object"),
])
async def test_a_malformed_batch_is_refused_whole(
        kernel: Kernel, store: httpx.AsyncClient, user: str, content: Any, status: int,
        named: str) -> None:
    answer = await kernel.http.post(BATCH, json=content)
    assert answer.status_code == status, answer.text
    body = problem_of(answer)
    assert named in body["detail"] and body["errors"]
    assert (await store.get("/jobs", params={"user_id": user})).json()["total"] == 0


@pytest.mark.parametrize("backend", ["redis"])
async def test_items_are_checked_like_single_submits(kernel: Kernel, user: str) -> None:
    answer = await kernel.http.post(BATCH, json={"jobs": [
        good(0, user_id=f"{user}-other"),          # another user's: not for a non-admin
        "not an object",
        {"estimated_time": 1},                     # no job_name
        good(3, params={"blob": "x" * 300_000}),   # over the queue's message limit
        good(4, surprise=True),
        good(5),
    ]})
    assert answer.status_code == 207, answer.text
    results = answer.json()["results"]
    assert [result.get("status") for result in results] == [403, 400, 400, 413, 400, None]
    assert results[0]["errors"][0]["field"] == "user_id"
    assert results[2]["errors"][0]["field"] == "job_name" and "job_name" in results[2]["detail"]
    assert results[3]["errors"][0]["field"] == "params" and results[3]["limit_bytes"] > 0
    assert results[4]["errors"][0]["field"] == "surprise"
    for result in results[:5]:
        assert {"index", "status", "title", "detail", "errors"} <= result.keys(), result
    assert "job_id" in results[5]
    for result in results[:5]:
        assert "{'" not in result["detail"] and "[{" not in result["detail"]


@pytest.mark.parametrize("backend", ["redis"])
async def test_a_batch_takes_one_place_per_job_in_the_unfinished_limit(
        open_kernel: OpenKernel, store: httpx.AsyncClient, user: str) -> None:
    kernel = await open_kernel(MAX_UNFINISHED_JOBS_PER_USER="5")
    refused = await kernel.http.post(BATCH, json={"jobs": [good(n) for n in range(6)]})
    assert refused.status_code == 429, refused.text
    assert "MAX_UNFINISHED_JOBS_PER_USER" in refused.json()["detail"]
    assert (await store.get("/jobs", params={"user_id": user})).json()["total"] == 0
    accepted = await kernel.http.post(BATCH, json={"jobs": [good(n) for n in range(5)]})
    assert accepted.status_code == 200, accepted.text
    assert (await kernel.submit(user)).status_code == 429  # the five took every place


@pytest.mark.parametrize("backend", ["redis"])
async def test_data_service_down_is_a_503_naming_every_job(
        open_kernel: OpenKernel, user: str) -> None:
    kernel = await open_kernel(DATA_SERVICE_DEADLINE="0.5")
    kernel.break_data_service()
    answer = await kernel.http.post(BATCH, json={"jobs": [good(0), good(1), good(2)]})
    assert answer.status_code == 503, answer.text
    body = problem_of(answer)
    assert len(body["job_ids"]) == 3 and "never run" in body["detail"]
    async with queue_of(kernel.settings) as queue:
        assert await queue.depth() == 0
