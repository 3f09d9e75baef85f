"""Following, listing, cancelling and deleting jobs; what the submit form can offer."""

from __future__ import annotations

import uuid

import httpx
import pytest

from backend.jobs import JobStatus
from tests.integration.api.conftest import Kernel

pytestmark = pytest.mark.parametrize("backend", ["redis"])

UNKNOWN_ID = "0123456789abcdef01234567"


async def submitted(kernel: Kernel, user: str, **fields: object) -> str:
    answer = await kernel.submit(user, **fields)
    assert answer.status_code == 200, answer.text
    return answer.json()["job_id"]


async def test_get_a_job_and_bad_ids(kernel: Kernel, user: str) -> None:
    job_id = await submitted(kernel, user, description="poll me")
    job = (await kernel.http.get(f"/api/v1/jobs/{job_id}")).json()
    assert (job["id"], job["description"], job["status"]) == (job_id, "poll me", "queued")

    missing = await kernel.http.get(f"/api/v1/jobs/{UNKNOWN_ID}")
    assert missing.status_code == 404 and UNKNOWN_ID in missing.json()["detail"]
    for bad in ("nope", "0123456789ABCDEF01234567", "1" * 25, "%00"):
        answer = await kernel.http.get(f"/api/v1/jobs/{bad}")
        assert answer.status_code == 400, answer.text
        assert "job_id" in answer.json()["detail"]


async def test_list_newest_first_with_pages_and_status_filter(
        kernel: Kernel, store: httpx.AsyncClient, user: str) -> None:
    ids = [await submitted(kernel, user, description=str(n)) for n in range(3)]
    await store.put(f"/job/{ids[0]}", json={"status": "running"})

    first = (await kernel.http.get("/api/v1/jobs", params={"user_id": user, "limit": 2})).json()
    assert [job["id"] for job in first["items"]] == [ids[2], ids[1]]
    assert first["total"] == 3 and first["next_cursor"]
    rest = (await kernel.http.get("/api/v1/jobs", params={
        "user_id": user, "limit": 2, "cursor": first["next_cursor"]})).json()
    assert [job["id"] for job in rest["items"]] == [ids[0]]

    running = (await kernel.http.get("/api/v1/jobs",
                                     params={"user_id": user, "status": "running"})).json()
    assert [job["id"] for job in running["items"]] == [ids[0]]
    other = await kernel.http.get("/api/v1/jobs", params={"user_id": f"{user}-x"})
    assert other.status_code == 403  # another user's list: admins only


@pytest.mark.parametrize(("params", "named"), [
    ({"user_id": "has space"}, "user_id"),
    ({"status": "done"}, "status"),
    ({"limit": 0}, "limit"),
    ({"offset": -1}, "offset"),
    ({"cursor": "not-a-cursor"}, "cursor"),  # refused by the data service
])
async def test_list_bad_query_is_a_400_naming_it(kernel: Kernel, params: dict[str, object],
                                                 named: str) -> None:
    answer = await kernel.http.get("/api/v1/jobs", params=params)
    assert answer.status_code == 400, answer.text
    assert named in answer.text


async def test_cancel_then_delete(kernel: Kernel, store: httpx.AsyncClient, user: str) -> None:
    job_id = await submitted(kernel, user)
    refused = await kernel.http.delete(f"/api/v1/jobs/{job_id}")
    assert refused.status_code == 409
    assert refused.json()["current_status"] == "queued" and "cancel" in refused.json()["detail"]

    cancelled = await kernel.http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == JobStatus.CANCELLED
    assert (await store.get(f"/job/{job_id}")).json()["status"] == JobStatus.CANCELLED

    again = await kernel.http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409 and again.json()["current_status"] == "cancelled"

    deleted = await kernel.http.delete(f"/api/v1/jobs/{job_id}")
    assert deleted.status_code == 200 and deleted.json() == {"message": f"Job {job_id} deleted."}
    assert (await kernel.http.get(f"/api/v1/jobs/{job_id}")).status_code == 404
    assert (await kernel.http.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 404


async def test_cancel_a_running_job(kernel: Kernel, store: httpx.AsyncClient, user: str) -> None:
    # The stop command finds no RQ job for it here: best effort, the cancel still holds.
    job_id = await submitted(kernel, user)
    await store.put(f"/job/{job_id}", json={"status": "running", "progress": 40})
    cancelled = await kernel.http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == JobStatus.CANCELLED
    late = await store.put(f"/job/{job_id}", json={"status": "succeeded"})
    assert late.status_code == 409  # the worker's late report cannot undo the cancel


async def test_cancel_a_finished_job_is_a_409(kernel: Kernel, store: httpx.AsyncClient,
                                              user: str) -> None:
    job_id = await submitted(kernel, user)
    await store.put(f"/job/{job_id}", json={"status": "running"})
    await store.put(f"/job/{job_id}", json={"status": "succeeded", "result": {"ok": 1}})
    answer = await kernel.http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert answer.status_code == 409
    assert answer.json()["current_status"] == "succeeded"


async def test_tasks_and_executors(kernel: Kernel) -> None:
    tasks = {t["name"]: t["description"] for t in (await kernel.http.get("/api/v1/tasks")).json()}
    builtin = {"echo", "simulate", "fail", "wordcount", "checksum"}
    assert builtin <= tasks.keys()
    assert all(tasks[name] for name in builtin)  # each with its one-line description
    executors = (await kernel.http.get("/api/v1/executors")).json()
    assert executors == [{"name": "standard", "default": True},
                         {"name": "priority", "default": False}]


@pytest.mark.parametrize("odd", [".", "..", "...", "a..b"])
async def test_any_valid_user_id_lists_its_own_jobs(kernel: Kernel, odd: str) -> None:
    # Such ids (an OIDC subject may be anything) travel to the data service as a query
    # value: they never change its path. An admin submits for and lists that user.
    admin = await kernel.sign_in(f"admin-{uuid.uuid4().hex[:8]}", role="admin")
    answer = await admin.post("/api/v1/job_executor/async", json={
        "job_name": "echo", "user_id": odd, "estimated_time": 1})
    assert answer.status_code == 200, answer.text
    page = await admin.get("/api/v1/jobs", params={"user_id": odd})
    assert page.status_code == 200, page.text
    assert answer.json()["job_id"] in [job["id"] for job in page.json()["items"]]


def _documented(schema: dict, path: str, method: str) -> set[str]:
    return set(schema["paths"][path][method]["responses"])


async def test_the_openapi_schema_documents_every_answer_and_is_strict(kernel: Kernel) -> None:
    schema = (await kernel.http.get("/schema/openapi.json")).json()
    assert {"200", "400", "413", "415", "422", "429", "503"} <= _documented(
        schema, "/api/v1/job_executor/async", "post")
    assert {"200", "400", "404", "503"} <= _documented(schema, "/api/v1/jobs/{job_id}", "get")
    assert {"404", "409", "503"} <= _documented(schema, "/api/v1/jobs/{job_id}/cancel", "post")
    assert {"404", "409"} <= _documented(schema, "/api/v1/jobs/{job_id}", "delete")
    assert {"404", "429"} <= _documented(schema, "/api/v1/jobs/{job_id}/events", "get")
