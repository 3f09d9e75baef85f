"""The live event stream, and the kernel as the process every deployment starts."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.problems import problem_of
from tests.services import ManagedProcess, create_user, sign_in

pytestmark = pytest.mark.parametrize("backend", ["redis"])

StartKernel = Callable[..., tuple[str, ManagedProcess]]


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str | None, str]]:
    """(event, data) of each event; comments (keep-alives) are skipped as browsers do."""
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def signed_in(url: str, data_service: str, user: str) -> dict[str, str]:
    create_user(data_service, user)
    return {"Authorization": f"Bearer {sign_in(url, user)}"}


async def test_stream_follows_a_job_until_it_finishes(
        kernel_process: StartKernel, store: httpx.AsyncClient, user: str,
        data_service: str) -> None:
    url, proc = kernel_process()
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 headers=signed_in(url, data_service, user)) as http:
        answer = await http.post("/api/v1/job_executor/async", json={
            "job_name": "simulate", "user_id": user, "estimated_time": 2})
        assert answer.status_code == 200, answer.text
        job_id = answer.json()["job_id"]

        seen: list[tuple[str, float]] = []
        # Each change is made only after the previous event arrived, so the stream is
        # shown to deliver while the job runs, not just a summary at the end.
        moves = iter([{"status": "running", "progress": 10}, {"progress": 60},
                      {"status": "succeeded", "progress": 100, "result": {"ok": True}}])
        async with http.stream("GET", f"/api/v1/jobs/{job_id}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for event, data in sse_events(response):
                assert event == "job"
                job = json.loads(data)
                assert job["id"] == job_id
                seen.append((job["status"], job["progress"]))
                move = next(moves, None)
                if move is not None:
                    assert (await store.put(f"/job/{job_id}", json=move)).status_code == 200
        # The stream ended by itself after the terminal status.
        assert seen == [("queued", 0), ("running", 10), ("running", 60), ("succeeded", 100)]

        missing = await http.get("/api/v1/jobs/0123456789abcdef01234567/events")
        assert problem_of(missing, 404)["instance"] == missing.request.url.path

    assert proc.stop() == 0  # SIGTERM: a clean exit


async def test_sigterm_ends_open_streams_and_exits_cleanly(
        kernel_process: StartKernel, user: str, data_service: str) -> None:
    url, proc = kernel_process()
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 headers=signed_in(url, data_service, user)) as http:
        job_id = (await http.post("/api/v1/job_executor/async", json={
            "job_name": "echo", "user_id": user, "estimated_time": 1})).json()["job_id"]
        events = []
        async with http.stream("GET", f"/api/v1/jobs/{job_id}/events") as response:
            async for event, _ in sse_events(response):
                events.append(event)
                # No worker runs here, so only the shutdown can end this stream.
                proc.signal(signal.SIGTERM)
        assert events == ["job"]
    assert proc.stop(timeout=30) == 0
    assert "Exception" not in proc.log_path.read_text()
