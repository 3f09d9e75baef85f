"""The webhook sender against a real Redis and a real HTTP receiver on 127.0.0.1: signed
deliveries, retries with backoff, redirects never followed, one delivery per job, and a
claim left by a dead sender delivered again."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from backend import webhooks
from backend.embedded import free_port
from backend.jobs import Job, JobStatus
from backend.settings import WebhookSettings
from backend.workers.dispatcher.webhooks import _CLAIM, WebhookSender

SECRET = "test-webhook-secret"


@dataclass
class Receiver:
    """An HTTP server that answers each POST with the next of ``answers`` (then 200)."""

    port: int = field(default_factory=free_port)
    answers: list[int] = field(default_factory=list)
    calls: list[tuple[float, dict[str, str], bytes, str]] = field(default_factory=list)
    redirected: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.calls.append((time.monotonic(), dict(request.headers), body, request.path))
        status = self.answers.pop(0) if self.answers else 200
        if 300 <= status < 400:
            return web.Response(status=status, headers={"Location": self.url("/elsewhere")})
        return web.Response(status=status)

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.redirected += 1
        return web.Response(status=200)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    app.router.add_route("*", "/elsewhere", found.elsewhere)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", found.port).start()
    yield found
    await runner.cleanup()


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="backend.workers.dispatcher.webhooks")


@pytest.fixture
async def streams(rq_redis, rq_redis_url) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(rq_redis_url)
    yield connection
    await connection.aclose()


def settings(receiver: Receiver, **overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = dict(webhook_allowed_hosts=receiver.host, webhook_secret=SECRET,
                                  webhook_timeout=1.0, webhook_max_attempts=3,
                                  webhook_backoff_base=0.3, webhook_backoff_max=5.0)
    return WebhookSettings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


def finished_job(url: str, job_id: str = "a" * 24) -> Job:
    now = datetime.now(UTC)
    return Job(id=job_id, name="echo", user_id="hooks", status=JobStatus.SUCCEEDED,
               result={"ok": True}, created_at=now, updated_at=now, finished_at=now,
               callback_url=url)


async def run_until(sender: WebhookSender, done: Any, within: float = 15.0) -> None:
    task = asyncio.create_task(sender.run())
    deadline = time.monotonic() + within
    try:
        while not done():
            assert time.monotonic() < deadline, "timed out"
            assert not task.done(), task
            await asyncio.sleep(0.05)
    finally:
        sender.stop()
        await task


async def test_a_failed_delivery_is_retried_after_its_backoff_then_signed_and_delivered(
        streams, receiver):
    receiver.answers = [500]
    job = finished_job(receiver.url())
    assert await webhooks.schedule(streams, [job]) == 1
    sender = WebhookSender(settings(receiver), streams)
    await run_until(sender, lambda: len(receiver.calls) == 2)
    (first, _, _, _), (second, headers, body, _) = receiver.calls
    assert second - first >= 0.3 * 0.9  # WEBHOOK_BACKOFF_BASE, less the jitter
    assert msgspec.json.decode(body, type=Job) == job
    assert headers[webhooks.JOB_ID_HEADER] == job.id
    assert headers["Content-Type"] == "application/json"
    assert webhooks.verify(SECRET, body, headers[webhooks.SIGNATURE_HEADER])
    assert not webhooks.verify("another-secret", body, headers[webhooks.SIGNATURE_HEADER])
    delivery = await streams.hgetall(webhooks.delivery_key(job.id))
    assert delivery[b"state"] == b"delivered" and delivery[b"attempts"] == b"2"
    assert await streams.zcard(webhooks.DUE_KEY) == 0
    assert await streams.ttl(webhooks.delivery_key(job.id)) > 0


async def test_a_job_is_scheduled_once_however_often_its_end_is_applied(streams, receiver):
    job = finished_job(receiver.url())
    assert await webhooks.schedule(streams, [job, job]) == 1
    assert await webhooks.schedule(streams, [job]) == 0
    # Jobs without a callback URL, or not finished, are not scheduled at all.
    unfinished = msgspec.structs.replace(job, id="b" * 24, status=JobStatus.RUNNING,
                                         finished_at=None)
    assert await webhooks.schedule(streams, [msgspec.structs.replace(
        job, id="c" * 24, callback_url=None), unfinished]) == 0
    sender = WebhookSender(settings(receiver), streams)
    await run_until(sender, lambda: receiver.calls)
    await asyncio.sleep(0.5)
    assert len(receiver.calls) == 1
    assert await webhooks.schedule(streams, [job]) == 0  # delivered: still remembered


async def test_a_redirect_is_never_followed_and_the_delivery_is_given_up_in_the_end(
        streams, receiver, caplog):
    receiver.answers = [302, 302, 302]
    job = finished_job(receiver.url())
    await webhooks.schedule(streams, [job])
    sender = WebhookSender(settings(receiver), streams)
    await run_until(sender, lambda: "given up after" in caplog.text)
    assert len(receiver.calls) == 3 and receiver.redirected == 0  # WEBHOOK_MAX_ATTEMPTS
    assert "given up after 3 attempts" in caplog.text and "answered 302" in caplog.text
    assert await streams.hget(webhooks.delivery_key(job.id), "state") == b"given up"
    assert await streams.zcard(webhooks.DUE_KEY) == 0


async def test_a_host_no_longer_allowed_gets_no_request(streams, receiver, caplog):
    job = finished_job(receiver.url())
    await webhooks.schedule(streams, [job])
    sender = WebhookSender(settings(receiver, webhook_allowed_hosts="hooks.example.com"),
                           streams)
    await run_until(sender, lambda: "given up" in caplog.text)
    assert receiver.calls == []
    assert "not in WEBHOOK_ALLOWED_HOSTS" in caplog.text


async def test_without_a_secret_nothing_is_delivered_and_the_deliveries_wait(
        streams, receiver, caplog):
    job = finished_job(receiver.url())
    await webhooks.schedule(streams, [job])
    sender = WebhookSender(settings(receiver, webhook_secret=""), streams)
    task = asyncio.create_task(sender.run())
    await asyncio.sleep(1.0)
    sender.stop()
    await task
    assert receiver.calls == []
    assert "WEBHOOK_SECRET is not set" in caplog.text
    assert await streams.zscore(webhooks.DUE_KEY, job.id) is not None  # still waiting


async def test_a_claim_left_by_a_dead_sender_is_delivered_after_its_lease(streams, receiver):
    job = finished_job(receiver.url())
    await webhooks.schedule(streams, [job])
    # A sender claims it and dies before delivering (its lease: 2 x 0.2 s + 5 s).
    dead = WebhookSender(settings(receiver, webhook_timeout=0.2), streams)
    assert await streams.eval(_CLAIM, 1, webhooks.DUE_KEY, 10, dead.lease_ms) == [
        job.id.encode()]
    claimed_at = time.monotonic()
    sender = WebhookSender(settings(receiver, webhook_timeout=0.2), streams)
    await run_until(sender, lambda: receiver.calls, within=20)
    assert receiver.calls[0][0] - claimed_at >= 5.0
