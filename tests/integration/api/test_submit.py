"""Submitting a job: recorded, queued, answered; and every way a submit can go wrong."""

from __future__ import annotations

import json

import httpx
import pytest

from backend.jobs import JobStatus
from tests.integration.api.conftest import Kernel, OpenKernel, closed_url, queue_of

redis_only = pytest.mark.parametrize("backend", ["redis"])


async def test_submit_records_a_queued_job_whose_message_is_on_the_queue(
        kernel: Kernel, store: httpx.AsyncClient, user: str) -> None:
    answer = await kernel.submit(user, "wordcount", executor="priority", description="d",
                                 params={"text": "a b a"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == 200
    job_id = body["job_id"]

    job = (await kernel.http.get(f"/api/v1/jobs/{job_id}")).json()
    assert (job["status"], job["name"], job["executor"], job["user_id"], job["params"]) == (
        JobStatus.QUEUED, "wordcount", "priority", user, {"text": "a b a"})
    assert (await store.get(f"/job/{job_id}")).json()["status"] == JobStatus.QUEUED

    async with queue_of(kernel.settings) as queue:
        deliveries = await queue.receive(wait_seconds=5)
        assert len(deliveries) == 1
        message = deliveries[0].message
        assert (message.job_id, message.name, message.executor, message.params,
                message.estimated_time) == (job_id, "wordcount", "priority", {"text": "a b a"}, 1)
        assert message.trace_id
        await queue.ack(deliveries[0])


@redis_only
async def test_executor_defaults_to_standard(kernel: Kernel, user: str) -> None:
    answer = await kernel.submit(user)
    assert answer.status_code == 200, answer.text
    async with queue_of(kernel.settings) as queue:
        [delivery] = await queue.receive(wait_seconds=5)
    assert delivery.message.executor == "standard"
    assert delivery.message.job_id == answer.json()["job_id"]


@redis_only
@pytest.mark.parametrize(("name", "executor", "field", "valid"), [
    ("no-such-task", None, "job_name", ["echo", "fail", "simulate"]),
    ("echo", "gpu", "executor", ["standard", "priority"]),
])
async def test_unknown_task_or_executor_is_a_422_listing_valid_ones(
        kernel: Kernel, user: str, name: str, executor: str | None, field: str,
        valid: list[str]) -> None:
    answer = await kernel.submit(user, name, executor=executor)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["errors"][0]["field"] == field
    for option in valid:
        assert option in body["detail"] and option in body["errors"][0]["message"]
    listed = await kernel.http.get("/api/v1/jobs", params={"user_id": user})
    assert listed.json()["total"] == 0  # nothing was recorded


def body(**fields: object) -> str:
    """A submit body: the good fields, with ``fields`` changed (None drops one)."""
    good: dict[str, object] = {"job_name": "echo", "estimated_time": 1}
    merged = {k: v for k, v in (good | fields).items() if v is not None}
    return json.dumps(merged)


@redis_only
@pytest.mark.parametrize(("content", "status", "named"), [
    pytest.param(body(job_name=None), 400, "job_name", id="missing-field"),
    pytest.param(body(estimated_time=None), 400, "estimated_time", id="missing-estimate"),
    pytest.param(body(job_name=7), 400, "job_name", id="wrong-type"),
    pytest.param(body(estimated_time=-5), 400, "estimated_time", id="negative-estimate"),
    pytest.param(body(estimated_time_s=3), 400, "estimated_time_s", id="unknown-field"),
    pytest.param(body(params=[1, 2]), 400, "params", id="params-not-object"),
    pytest.param(body(user_id="has space"), 400, "user_id", id="bad-user-id"),
    pytest.param('{"job_name": "echo", "user_id": ', 400, "JSON", id="invalid-json"),
    pytest.param("[]", 400, "object", id="not-an-object"),
    pytest.param("", 400, "body", id="no-body"),
    pytest.param(b'{"job_name": "\xff"}', 400, "UTF-8", id="not-utf8"),
    pytest.param(body(params={"deep": "@"}).replace('"@"', "[" * 5000 + "]" * 5000), 400,
                 "nested", id="nested-too-deep"),
    pytest.param(body(params={"blob": "x" * 2_000_000}), 413, "bytes", id="huge-body"),
    pytest.param(body(params={"blob": "x" * 300_000}), 413, "params",
                 id="params-over-queue-limit"),
    pytest.param(body(estimated_time="5"), 400, "estimated_time", id="estimate-as-string"),
    pytest.param(body(estimated_time=7 * 24 * 3600), 400, "MAX_JOB_TIMEOUT",
                 id="estimate-over-max-job-timeout"),
])
async def test_malformed_body_is_a_4xx_naming_the_field(
        kernel: Kernel, content: str | bytes, status: int, named: str) -> None:
    answer = await kernel.http.post("/api/v1/job_executor/async", content=content,
                                    headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    assert named in answer.json()["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          None])
async def test_a_body_that_is_not_declared_json_is_a_415(
        kernel: Kernel, store: httpx.AsyncClient, user: str, content_type: str | None) -> None:
    # What any web page can send cross-origin without a preflight: never a job.
    headers = {"content-type": content_type} if content_type else {}
    answer = await kernel.http.post("/api/v1/job_executor/async", content=body(user_id=user),
                                    headers=headers)
    assert answer.status_code == 415, answer.text
    assert "application/json" in answer.json()["detail"]
    assert (await store.get("/jobs", params={"user_id": user})).json()["total"] == 0


async def test_error_answers_name_no_internal_address(open_kernel: OpenKernel,
                                                      user: str) -> None:
    kernel = await open_kernel(DATA_SERVICE_DEADLINE="0.5")
    down = kernel.break_data_service()
    for answer in (await kernel.submit(user),
                   await kernel.http.get("/api/v1/jobs/0123456789abcdef01234567"),
                   await kernel.http.get("/readyz")):
        assert answer.status_code == 503
        assert "127.0.0.1" not in answer.text and down.rsplit(":", 1)[1] not in answer.text


async def test_data_service_down_is_a_503_and_nothing_is_queued(
        open_kernel: OpenKernel, user: str) -> None:
    kernel = await open_kernel(DATA_SERVICE_DEADLINE="0.5")
    kernel.break_data_service()  # after sign-in: the kernel still knows who asks
    answer = await kernel.submit(user)
    assert answer.status_code == 503, answer.text
    assert "data service" in answer.json()["detail"]
    assert answer.json()["job_id"] in answer.json()["detail"]  # and it will never run
    async with queue_of(kernel.settings) as queue:
        assert await queue.receive(wait_seconds=1) == []
        assert await queue.depth() == 0


async def test_queue_down_is_a_503_and_the_job_is_marked_failed(
        open_kernel: OpenKernel, store: httpx.AsyncClient, backend: str, user: str) -> None:
    down = ({"REDIS_URL": closed_url("redis")} if backend == "redis"
            else {"SQS_ENDPOINT_URL": closed_url()})
    kernel = await open_kernel(**down)
    answer = await kernel.submit(user)
    assert answer.status_code == 503, answer.text
    body = answer.json()
    job = (await store.get(f"/job/{body['job_id']}")).json()
    assert job["status"] == JobStatus.FAILED
    assert job["error"].startswith("submit failed: the queue refused it")
    assert body["job_id"] in body["detail"] and "failed" in body["detail"]
