"""What the job list carries (a summary per job), and compressed answers."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable

import httpx
import pytest

from backend.jobs import SUMMARY_ERROR_CHARS
from tests.integration.api.conftest import Kernel
from tests.integration.api.test_events import sse_events
from tests.services import ManagedProcess, create_user, sign_in

pytestmark = pytest.mark.parametrize("backend", ["redis"])

SUMMARY_FIELDS = {"id", "name", "user_id", "executor", "status", "progress", "attempts",
                  "estimated_time", "description", "error", "created_at", "updated_at",
                  "started_at", "finished_at", "run_at", "rerun_of"}


async def test_the_list_is_small_even_when_params_and_results_are_big(
        kernel: Kernel, store: httpx.AsyncClient, user: str) -> None:
    big = "x" * 50_000
    ids = []
    for n in range(5):
        answer = await kernel.submit(user, params={"blob": big, "n": n}, description=f"job {n}")
        ids.append(answer.json()["job_id"])
    await store.put(f"/job/{ids[0]}", json={"status": "running"})
    await store.put(f"/job/{ids[0]}", json={"status": "succeeded", "result": {"blob": big}})
    await store.put(f"/job/{ids[1]}", json={"status": "running"})
    await store.put(f"/job/{ids[1]}", json={"status": "failed", "error": "E" * 5000})

    listed = await kernel.http.get("/api/v1/jobs", headers={"Accept-Encoding": "identity"})
    assert listed.status_code == 200
    assert len(listed.content) < 5 * 1000  # five jobs of over 50 KB each
    page = listed.json()
    assert page["total"] == 5
    by_id = {item["id"]: item for item in page["items"]}
    for item in page["items"]:
        assert set(item) <= SUMMARY_FIELDS and "params" not in item and "result" not in item
    assert by_id[ids[2]]["description"] == "job 2" and by_id[ids[0]]["status"] == "succeeded"
    error = by_id[ids[1]]["error"]
    assert error.startswith("EEEE") and len(error) <= SUMMARY_ERROR_CHARS

    # The job itself is complete.
    whole = (await kernel.http.get(f"/api/v1/jobs/{ids[1]}")).json()
    assert whole["error"] == "E" * 5000 and whole["params"]["blob"] == big
    assert (await kernel.http.get(f"/api/v1/jobs/{ids[0]}")).json()["result"] == {"blob": big}


async def test_answers_over_a_kilobyte_are_gzipped_when_asked(kernel: Kernel,
                                                              user: str) -> None:
    for n in range(10):
        await kernel.submit(user, description=f"a description long enough {n} " * 3)
    listed = await kernel.http.get("/api/v1/jobs", headers={"Accept-Encoding": "gzip"})
    assert listed.status_code == 200
    assert listed.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in listed.headers["vary"]
    assert listed.json()["total"] == 10  # httpx decompressed it
    assert int(listed.headers["content-length"]) < len(listed.content)
    small = await kernel.http.get("/api/v1/auth/me", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # under 1 KiB: as it is
    plain = await kernel.http.get("/api/v1/jobs", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers


async def test_an_event_stream_is_not_compressed_and_its_first_event_comes_at_once(
        kernel_process: Callable[..., tuple[str, ManagedProcess]], user: str,
        data_service: str) -> None:
    url, _ = kernel_process()
    create_user(data_service, user)
    headers = {"Authorization": f"Bearer {sign_in(url, user)}", "Accept-Encoding": "gzip"}
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as http:
        job_id = (await http.post("/api/v1/job_executor/async", json={
            "job_name": "echo", "estimated_time": 1,
            "params": {"pad": "p" * 3000}})).json()["job_id"]  # a first event over 1 KiB
        started = time.monotonic()
        async with http.stream("GET", f"/api/v1/jobs/{job_id}/events") as response:
            assert response.status_code == 200
            assert "content-encoding" not in response.headers
            # No worker runs here: nothing but the first event is ever sent, so a buffering
            # compressor would hold it back until the stream ends.
            async for event, data in sse_events(response):
                assert (event, json.loads(data)["id"]) == ("job", job_id)
                break
        assert time.monotonic() - started < 5
        # The job itself (over 1 KiB) from the same kernel, for contrast: compressed.
        whole = await http.get(f"/api/v1/jobs/{job_id}")
        assert whole.headers.get("content-encoding") == "gzip"
        raw = gzip.decompress(await _raw(http, f"/api/v1/jobs/{job_id}"))
        assert json.loads(raw)["params"]["pad"] == "p" * 3000


async def _raw(http: httpx.AsyncClient, path: str) -> bytes:
    async with http.stream("GET", path) as response:
        return b"".join([chunk async for chunk in response.aiter_raw()])
