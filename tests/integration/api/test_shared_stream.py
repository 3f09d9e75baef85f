"""One live stream for several jobs (GET /api/v1/events?job=…), on a kernel process."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.api.test_events import StartKernel, signed_in, sse_events

pytestmark = pytest.mark.parametrize("backend", ["redis"])

UNKNOWN = "0123456789abcdef01234567"


async def submit(http: httpx.AsyncClient, user: str) -> str:
    answer = await http.post("/api/v1/job_executor/async", json={
        "job_name": "simulate", "user_id": user, "estimated_time": 2})
    assert answer.status_code == 200, answer.text
    return answer.json()["job_id"]


async def test_one_stream_follows_a_users_jobs_and_hides_everyone_elses(
        kernel_process: StartKernel, store: httpx.AsyncClient, user: str,
        data_service: str) -> None:
    url, proc = kernel_process(SSE_MAX_STREAMS_PER_USER="1")
    other = f"{user}-other"
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 headers=signed_in(url, data_service, user)) as http, \
            httpx.AsyncClient(base_url=url, timeout=30,
                              headers=signed_in(url, data_service, other)) as theirs:
        first, second = await submit(http, user), await submit(http, user)
        foreign = await submit(theirs, other)

        # Someone else's job answers exactly as a job that does not exist.
        for ids in ([foreign], [UNKNOWN]):
            refused = await http.get("/api/v1/events", params={"job": ids})
            assert refused.status_code == 404, refused.text
            assert refused.json()["detail"] == f"job {ids[0]} not found"

        seen: list[tuple[str | None, str, str | None]] = []
        moves = iter([
            (first, {"status": "running", "progress": 30}),
            (second, {"status": "running", "progress": 5}),
            (first, {"status": "succeeded", "progress": 100, "result": {"ok": True}}),
        ])
        follow = {"job": [first, foreign, second, UNKNOWN, first]}
        async with http.stream("GET", "/api/v1/events", params=follow) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "etag" not in response.headers  # a stream is never held back to hash it
            async for event, data in sse_events(response):
                body = json.loads(data)
                seen.append((event, body["id"], body.get("status")))
                if len(seen) == 4:
                    # One connection counts as one stream, however many jobs it follows.
                    again = await http.get(f"/api/v1/jobs/{first}/events")
                    assert again.status_code == 429, again.text
                    assert "SSE_MAX_STREAMS_PER_USER" in again.json()["detail"]
                if len(seen) >= 4:
                    move = next(moves, None)
                    if move is not None:
                        job_id, change = move
                        answer = await store.put(f"/job/{job_id}", json=change)
                        assert answer.status_code == 200, answer.text
                    elif event == "job" and body["status"] == "succeeded":
                        assert (await store.delete(f"/job/{second}")).status_code == 200
        # Unknown and foreign ids look the same; the stream ended by itself once the one
        # job had finished and the other was gone.
        assert seen == [
            ("gone", foreign, None), ("gone", UNKNOWN, None),
            ("job", first, "queued"), ("job", second, "queued"),
            ("job", first, "running"), ("job", second, "running"),
            ("job", first, "succeeded"), ("gone", second, None),
        ]
        # The stream's place is free again.
        async with http.stream("GET", f"/api/v1/jobs/{foreign}/events") as response:
            assert response.status_code == 404  # (and still not another user's to follow)
        async with theirs.stream("GET", "/api/v1/events", params={"job": foreign}) as response:
            assert response.status_code == 200
            event, data = await anext(sse_events(response))
            assert (event, json.loads(data)["id"]) == ("job", foreign)

    assert proc.stop() == 0


async def test_a_shared_stream_asks_for_one_to_a_hundred_job_ids(
        kernel_process: StartKernel, user: str, data_service: str) -> None:
    url, proc = kernel_process()
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 headers=signed_in(url, data_service, user)) as http:
        for params, words in (({}, "at least one job"),
                              ({"job": ["not-an-id"]}, "is not a job id"),
                              ({"job": [f"{n:024x}" for n in range(101)]}, "at most 100")):
            answer = await http.get("/api/v1/events", params=params)
            assert answer.status_code == 400, answer.text
            assert words in answer.text
    assert proc.stop() == 0
