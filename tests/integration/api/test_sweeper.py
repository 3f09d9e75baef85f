"""The sweep that queues jobs a kernel recorded but never queued (it died mid-submit).

Each test records a job straight in the data service, as a kernel that crashed right
after its first write would have left it, then starts a kernel with the sweep on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from backend.jobs import JobStatus, QueueMessage, utcnow
from backend.settings import Settings
from tests.integration.api.conftest import OpenKernel, closed_url, queue_of
from tests.services import ManagedProcess

pytestmark = pytest.mark.parametrize("backend", ["redis"])

# Sweep often, and count a job as left behind half a second after it was recorded.
SWEEP_FAST = {"STALE_SWEEP_INTERVAL": "0.1", "STALE_CREATED_AFTER": "0.5"}
DEADLINE = 30.0


async def record(store: httpx.AsyncClient, user: str, **fields: Any) -> str:
    """A job recorded in the data service only (status ``created``)."""
    response = await store.post("/job/", json={"name": "echo", "user_id": user, **fields})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def status_of(store: httpx.AsyncClient, job_id: str) -> str:
    return (await store.get(f"/job/{job_id}")).json()["status"]


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds (generous deadline: the machine may be busy)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not await check():
        assert loop.time() < deadline, f"still not true after {DEADLINE}s: {what}"
        await asyncio.sleep(0.05)


async def messages_for(settings: Settings, job_ids: set[str]) -> list[QueueMessage]:
    """Everything on the kernel's queue, once the messages of ``job_ids`` have all arrived.

    The sweep spans every user, so the queue may also carry other tests' leftover jobs.
    """
    received: list[QueueMessage] = []
    async with queue_of(settings) as queue:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while not job_ids <= {message.job_id for message in received}:
            assert loop.time() < deadline, f"no message for {job_ids} on the queue"
            for delivery in await queue.receive(wait_seconds=1):
                received.append(delivery.message)
                await queue.ack(delivery)
        # Anything else already there (a duplicate, say) is part of the answer too.
        for delivery in await queue.receive(wait_seconds=1):
            received.append(delivery.message)
            await queue.ack(delivery)
    return received


def settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


async def test_a_kernel_process_queues_a_job_left_created(
        kernel_process: Callable[..., tuple[str, ManagedProcess]], kernel_env: dict[str, str],
        store: httpx.AsyncClient, user: str, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = await record(store, user, name="wordcount", executor="priority",
                          estimated_time=2, params={"text": "a b a"})
    # Nothing picks the job up while no kernel runs: it stays half-written.
    assert await status_of(store, job_id) == JobStatus.CREATED

    _, proc = kernel_process(**SWEEP_FAST)

    async def queued() -> bool:
        return await status_of(store, job_id) == JobStatus.QUEUED

    await eventually(queued, f"job {job_id} queued by the sweep")
    settings = settings_of(kernel_env | SWEEP_FAST, monkeypatch)
    mine = [m for m in await messages_for(settings, {job_id}) if m.job_id == job_id]
    assert len(mine) == 1
    assert (mine[0].name, mine[0].executor, mine[0].params, mine[0].estimated_time) == (
        "wordcount", "priority", {"text": "a b a"}, 2)
    assert mine[0].trace_id
    assert proc.stop() == 0  # the sweep ends with the process, cleanly


async def test_a_fresh_created_job_is_left_alone(
        open_kernel: OpenKernel, store: httpx.AsyncClient, user: str, mongo_url: str,
        data_service_database: str) -> None:
    async def record_old() -> str:
        """A job left created an hour ago (its last update dated back in MongoDB)."""
        job_id = await record(store, user)
        async with AsyncMongoClient(mongo_url, tz_aware=True) as mongo:
            await mongo[data_service_database]["jobs"].update_one(
                {"_id": ObjectId(job_id)}, {"$set": {"updated_at": utcnow() - timedelta(hours=1)}})
        return job_id

    old = await record_old()
    fresh = await record(store, user)  # a submit that may still be sending its message
    kernel = await open_kernel(STALE_SWEEP_INTERVAL="0.1", STALE_CREATED_AFTER="600")

    def queued(job_id: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await status_of(store, job_id) == JobStatus.QUEUED
        return check

    await eventually(queued(old), "the old job queued")
    # Sweeps run one after another: once a job recorded now is swept, the sweep that
    # queued the old one has finished, and it saw the fresh job.
    later = await record_old()
    await eventually(queued(later), "the second old job queued")

    assert await status_of(store, fresh) == JobStatus.CREATED
    sent = {m.job_id for m in await messages_for(kernel.settings, {old, later})}
    assert fresh not in sent
    # Leave no created job behind for the sweeps of later tests.
    await store.put(f"/job/{fresh}", json={"status": "cancelled"})


@pytest.fixture
def sweeper_log() -> Iterator[list[str]]:
    """What the sweeper logs during the test.

    (Not caplog: Litestar's logging setup replaces the root logger's handlers.)
    """
    lines: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("backend.api.sweeper")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


async def test_a_job_the_queue_refused_is_queued_by_a_later_sweep(
        open_kernel: OpenKernel, store: httpx.AsyncClient, user: str,
        sweeper_log: list[str]) -> None:
    job_id = await record(store, user)
    await open_kernel(REDIS_URL=closed_url("redis"), **SWEEP_FAST)

    # A sweep stops at the first job the queue refuses, which may be another test's
    # leftover (oldest first): any refusal means the sweeps are running into the queue.
    async def refused() -> bool:
        return any("the queue refused" in line for line in sweeper_log)

    await eventually(refused, "a sweep tried and the queue refused")
    # Not failed, unlike a submit the queue refuses: the job is kept for the next sweep.
    assert await status_of(store, job_id) == JobStatus.CREATED

    # Another replica, with a working queue, finishes the job's submit.
    healthy = await open_kernel(**SWEEP_FAST)

    async def queued() -> bool:
        return await status_of(store, job_id) == JobStatus.QUEUED

    await eventually(queued, "the job queued once a queue took it")
    assert job_id in {m.job_id for m in await messages_for(healthy.settings, {job_id})}
