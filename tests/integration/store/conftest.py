"""Fixtures of the data service tests: the app in-process over nx-27017, and helpers.

In-process tests share one app (Beanie binds its document classes process-wide) on the
test event loop, so ``asyncio.gather`` really interleaves requests. Each test works
under its own user id, so tests never see each other's jobs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from backend.jobs import JobStatus
from backend.settings import MongoSettings, Settings, StoreSettings
from backend.store.app import create_app
from tests.services import SERVICE_HEADERS, TEST_SECRETS

# How to bring a fresh job to each status with legal moves only (a scheduled job is
# recorded scheduled, as the kernel records it).
PATHS: dict[JobStatus, list[JobStatus]] = {
    JobStatus.CREATED: [],
    JobStatus.SCHEDULED: [],
    JobStatus.QUEUED: [JobStatus.QUEUED],
    JobStatus.RUNNING: [JobStatus.QUEUED, JobStatus.RUNNING],
    JobStatus.RETRYING: [JobStatus.RUNNING, JobStatus.RETRYING],
    JobStatus.SUCCEEDED: [JobStatus.RUNNING, JobStatus.SUCCEEDED],
    JobStatus.FAILED: [JobStatus.RUNNING, JobStatus.FAILED],
    JobStatus.CANCELLED: [JobStatus.QUEUED, JobStatus.CANCELLED],
}

MakeJob = Callable[..., Awaitable[str]]


def store_settings(mongo_url: str, database: str, **store: Any) -> Settings:
    """Process settings with the store pointed at ``mongo_url``/``database``."""
    settings = Settings()
    settings.mongo = MongoSettings(mongodb_url=mongo_url, database_name=database,
                                   mongodb_timeout_ms=2000)
    settings.api.data_service_token = TEST_SECRETS["DATA_SERVICE_TOKEN"]
    if store:
        settings.store = StoreSettings(**store)
    return settings


@pytest.fixture(scope="package")
async def store(mongo_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the data service app, run in-process on the test loop."""
    app = create_app(store_settings(mongo_url, "store_inprocess", max_body_bytes=64 * 1024))
    started, stop = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        # Enter and leave the lifespan in one task: its task group must not change task.
        async with app.lifespan():
            started.set()
            await stop.wait()

    server = asyncio.create_task(serve())
    await asyncio.wait([server, asyncio.create_task(started.wait())],
                       return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        server.result()  # startup failed: raise its error here
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://store",
                                 headers=SERVICE_HEADERS) as client:
        yield client
    stop.set()
    await server


@pytest.fixture
def user() -> str:
    """A user id of this test alone."""
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_job(store: httpx.AsyncClient, user: str) -> MakeJob:
    """Create a job for ``user`` (moved to ``status`` along PATHS); returns its id."""

    async def make(status: JobStatus = JobStatus.CREATED, **fields: Any) -> str:
        body = {"name": "echo", "user_id": user, **fields}
        if status == JobStatus.SCHEDULED:
            job_id = str(ObjectId())
            run_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            response = await store.post("/jobs/bulk", json={"jobs": [
                {**body, "id": job_id, "status": "scheduled", "run_at": run_at}]})
            assert response.status_code == 200, response.text
            return job_id
        response = await store.post("/job/", json=body)
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        for step in PATHS[status]:
            moved = await store.put(f"/job/{job_id}", json={"status": step})
            assert moved.status_code == 200, moved.text
        return job_id

    return make
