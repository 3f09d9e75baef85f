"""Every route of the data service, answered as the contract says."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import msgspec

from backend.jobs import OBJECT_ID_PATTERN, Job, JobCreated, JobPage
from tests.integration.store.conftest import MakeJob

UTC_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")


async def test_create_then_get_returns_the_job_with_server_fields(
        store: httpx.AsyncClient, user: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    body = {"name": "wordcount", "user_id": user, "description": "count words",
            "estimated_time": 2.5, "params": {"text": "a b c", "nested": {"n": [1, 2.5, None]}},
            "executor": "priority"}
    created = await store.post("/job/", json=body)
    assert created.status_code == 201
    job_id = msgspec.json.decode(created.content, type=JobCreated).id
    assert re.match(OBJECT_ID_PATTERN, job_id)

    response = await store.get(f"/job/{job_id}")
    assert response.status_code == 200
    raw = response.json()
    job = msgspec.json.decode(response.content, type=Job)
    assert job.id == job_id
    assert (job.name, job.user_id, job.description, job.estimated_time, job.executor) == (
        "wordcount", user, "count words", 2.5, "priority")
    assert job.params == {"text": "a b c", "nested": {"n": [1, 2.5, None]}}
    assert job.status == "created" and job.progress == 0 and job.attempts == 0
    assert job.result is None and job.error is None and job.started_at is None
    assert job.created_at == job.updated_at
    assert before <= job.created_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert UTC_STAMP.match(raw["created_at"]) and UTC_STAMP.match(raw["updated_at"])


async def test_create_uses_defaults_for_optional_fields(store: httpx.AsyncClient,
                                                         user: str) -> None:
    created = await store.post("/job", json={"name": "echo", "user_id": user})
    job = (await store.get(f"/job/{created.json()['id']}")).json()
    assert job["executor"] == "standard"
    assert job["params"] is None and job["description"] is None


async def test_put_updates_only_the_fields_sent(store: httpx.AsyncClient,
                                                make_job: MakeJob) -> None:
    job_id = await make_job(description="first")
    before = (await store.get(f"/job/{job_id}")).json()
    response = await store.put(f"/job/{job_id}", json={
        "status": "running", "progress": 42.5, "attempts": 1, "worker_id": "w-1"})
    assert response.status_code == 200
    job = response.json()
    assert job["status"] == "running" and job["progress"] == 42.5
    assert job["attempts"] == 1 and job["worker_id"] == "w-1"
    assert job["description"] == "first"
    assert job["updated_at"] >= before["updated_at"]
    assert job["started_at"] is not None and UTC_STAMP.match(job["started_at"])
    assert (await store.get(f"/job/{job_id}")).json() == job


async def test_put_without_status_keeps_status(store: httpx.AsyncClient,
                                               make_job: MakeJob) -> None:
    job_id = await make_job("running")
    job = (await store.put(f"/job/{job_id}", json={"progress": 10})).json()
    assert job["status"] == "running" and job["progress"] == 10


async def test_put_can_clear_nullable_fields(store: httpx.AsyncClient, make_job: MakeJob) -> None:
    job_id = await make_job(description="to clear", estimated_time=3)
    job = (await store.put(f"/job/{job_id}", json={"description": None,
                                                   "estimated_time": None})).json()
    assert job["description"] is None and job["estimated_time"] is None


async def test_empty_put_returns_the_job_unchanged(store: httpx.AsyncClient,
                                                   make_job: MakeJob) -> None:
    job_id = await make_job("succeeded")
    before = (await store.get(f"/job/{job_id}")).json()
    response = await store.put(f"/job/{job_id}", json={})
    assert response.status_code == 200 and response.json() == before


async def test_result_and_error_are_stored(store: httpx.AsyncClient, make_job: MakeJob) -> None:
    done = await make_job("running")
    result = {"words": 3, "top": [["a", 1]], "ok": True, "ratio": 0.5, "none": None}
    job = (await store.put(f"/job/{done}", json={"status": "succeeded", "progress": 100,
                                                 "result": result})).json()
    assert job["result"] == result and job["progress"] == 100
    failed = await make_job("running")
    job = (await store.put(f"/job/{failed}", json={"status": "failed",
                                                   "error": "boom: ValueError"})).json()
    assert job["error"] == "boom: ValueError" and job["status"] == "failed"


async def test_delete_on_both_paths(store: httpx.AsyncClient, make_job: MakeJob) -> None:
    for path in ("/jobs", "/job"):
        job_id = await make_job()
        response = await store.delete(f"{path}/{job_id}")
        assert response.status_code == 200
        assert response.json() == {"message": f"Job {job_id} deleted."}
        assert (await store.get(f"/job/{job_id}")).status_code == 404
        again = await store.delete(f"{path}/{job_id}")
        assert again.status_code == 404 and job_id in again.json()["detail"]


async def test_unknown_id_is_404_on_every_route(store: httpx.AsyncClient) -> None:
    missing = "0123456789abcdef01234567"
    for method, path, body in [("GET", f"/job/{missing}", None),
                               ("PUT", f"/job/{missing}", {"progress": 1}),
                               ("PUT", f"/job/{missing}", {"status": "running"}),
                               ("DELETE", f"/job/{missing}", None),
                               ("DELETE", f"/jobs/{missing}", None)]:
        response = await store.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert missing in response.json()["detail"]


async def test_list_returns_a_job_page(store: httpx.AsyncClient, make_job: MakeJob,
                                       user: str) -> None:
    job_id = await make_job()
    response = await store.get(f"/job/user/{user}")
    assert response.status_code == 200
    page = msgspec.json.decode(response.content, type=JobPage)
    assert [job.id for job in page.items] == [job_id]
    assert (page.total, page.limit, page.offset, page.next_cursor) == (1, 20, 0, None)


async def test_list_of_unknown_user_is_empty(store: httpx.AsyncClient) -> None:
    page = (await store.get("/job/user/nobody-at-all")).json()
    assert page["items"] == [] and page["total"] == 0


async def test_healthz_and_readyz(store: httpx.AsyncClient) -> None:
    assert (await store.get("/healthz")).json() == {"status": "ok"}
    ready = await store.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


async def test_openapi_types_the_id_as_24_hex(store: httpx.AsyncClient) -> None:
    response = await store.get("/schema/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    job_id = schema["components"]["schemas"]["Job"]["properties"]["id"]
    assert job_id["type"] == "string" and job_id["pattern"] == OBJECT_ID_PATTERN
    created_id = schema["components"]["schemas"]["JobCreated"]["properties"]["id"]
    assert created_id["pattern"] == OBJECT_ID_PATTERN
    for path in ("/job/{job_id}", "/jobs/{job_id}"):
        for operation in schema["paths"][path].values():
            (param,) = [p for p in operation["parameters"] if p["name"] == "job_id"]
            assert param["in"] == "path" and param["schema"]["pattern"] == OBJECT_ID_PATTERN
    assert {"/job", "/job/user/{user_id}", "/healthz", "/readyz"} <= set(schema["paths"])
    listing = schema["paths"]["/job/user/{user_id}"]["get"]["parameters"]
    status = next(p for p in listing if p["name"] == "status")
    assert set(status["schema"]["enum"]) == {
        "created", "queued", "scheduled", "running", "retrying", "succeeded", "failed",
        "cancelled"}
    assert (await store.get("/schema")).status_code == 200
