"""The webhook sender against a real Redis, a real data service and a real HTTP receiver
on 127.0.0.1: deliveries signed with each owner's own secret (never WEBHOOK_SECRET), the
callback URL signed too, rotation, retries with backoff, redirects never followed, one
delivery per job, and a claim left by a dead sender delivered again."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from backend import webhook_signing
from backend.dispatcher.webhook_sender import _CLAIM, WebhookSender
from backend.jobs import Job, JobStatus
from backend.local.embedded import free_port
from backend.settings import WebhookSettings
from backend.store.client import DataServiceClient
from tests.integration.api.conftest import closed_url
from tests.services import TEST_SECRETS, python_module

SECRET = "test-webhook-secret"  # WEBHOOK_SECRET: the master every user's secret comes from
OWNER = "hooks"  # the owner of the jobs of the tests that do not name one


@dataclass
class Call:
    at: float
    headers: dict[str, str]
    body: bytes
    path: str
    verified: bool  # what the receiver's verify() said, with the secret it was given


@dataclass
class Receiver:
    """An HTTP server that answers each POST with the next of ``answers`` (then 200), and
    checks each delivery's signature as a receiver does: with the secret its owner gave it
    (``secrets``, by path) and its own URL."""

    port: int = field(default_factory=free_port)
    answers: list[int] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    redirected: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        header = request.headers.get(webhook_signing.SIGNATURE_HEADER, "")
        verified = webhook_signing.verify(self.secrets.get(request.path, ""),
                                          self.url(request.path), body, header)
        self.calls.append(Call(time.monotonic(), dict(request.headers), body, request.path,
                               verified))
        status = self.answers.pop(0) if self.answers else 200
        if 300 <= status < 400:
            return web.Response(status=status, headers={"Location": self.url("/elsewhere")})
        return web.Response(status=status)

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.redirected += 1
        return web.Response(status=200)


@pytest.fixture(scope="module")
def data_service(mongo_url: str, log_dir: Path) -> Iterator[str]:
    """``python -m backend.store``: keeps each user's webhook key id."""
    port = free_port()
    env = {"MONGODB_URL": mongo_url, "DATABASE_NAME": f"hooks_{port}",
           "MONGODB_TIMEOUT_MS": "2000"}
    proc = python_module(f"store-hooks-{port}", "backend.store", log_dir, env, "--port",
                         str(port))
    url = f"http://127.0.0.1:{port}"
    proc.start().wait_http(f"{url}/readyz", timeout=60)
    yield url
    proc.stop()


@pytest.fixture
async def client(data_service: str) -> AsyncIterator[DataServiceClient]:
    made = DataServiceClient(data_service, token=TEST_SECRETS["DATA_SERVICE_TOKEN"],
                             timeout=2, deadline=2)
    yield made
    await made.stop()


async def rotate(client: DataServiceClient, user: str) -> str:
    """What ``POST /api/v1/webhooks/secret`` does for ``user``: a new key id, and the
    secret the kernel shows for it."""
    key = await client.rotate_webhook_key(user)
    return webhook_signing.derive_secret(SECRET, user, key.key_id)


@pytest.fixture
async def receiver(client: DataServiceClient) -> AsyncIterator[Receiver]:
    found = Receiver()
    found.secrets["/hook"] = await rotate(client, OWNER)
    app = web.Application()
    for path in ("/hook", "/alice", "/alice-2", "/bob"):
        app.router.add_post(path, found.handle)
    app.router.add_route("*", "/elsewhere", found.elsewhere)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", found.port).start()
    yield found
    await runner.cleanup()


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="backend.dispatcher.webhook_sender")


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


def finished_job(url: str, job_id: str = "a" * 24, user: str = OWNER) -> Job:
    now = datetime.now(UTC)
    return Job(id=job_id, name="echo", user_id=user, status=JobStatus.SUCCEEDED,
               result={"ok": True}, created_at=now, updated_at=now, finished_at=now,
               callback_url=url)


async def until(task: asyncio.Task[None], done: Any, within: float = 15.0) -> None:
    """Wait for ``done()`` while the sender's ``task`` runs."""
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "timed out"
        assert not task.done(), task
        await asyncio.sleep(0.05)


async def run_until(sender: WebhookSender, done: Any, within: float = 15.0) -> None:
    task = asyncio.create_task(sender.run())
    try:
        await until(task, done, within)
    finally:
        sender.stop()
        await task


async def test_a_failed_delivery_is_retried_after_its_backoff_then_signed_and_delivered(
        streams, receiver, client):
    receiver.answers = [500]
    job = finished_job(receiver.url())
    assert await webhook_signing.schedule(streams, [job]) == 1
    sender = WebhookSender(settings(receiver), streams, client)
    await run_until(sender, lambda: len(receiver.calls) == 2)
    first, second = receiver.calls
    assert second.at - first.at >= 0.3 * 0.9  # WEBHOOK_BACKOFF_BASE, less the jitter
    assert msgspec.json.decode(second.body, type=Job) == job
    assert second.headers[webhook_signing.JOB_ID_HEADER] == job.id
    assert second.headers["Content-Type"] == "application/json"
    assert first.verified and second.verified  # with the owner's secret
    header = second.headers[webhook_signing.SIGNATURE_HEADER]
    assert not webhook_signing.verify("another-secret", job.callback_url or "", second.body, header)
    delivery = await streams.hgetall(webhook_signing.delivery_key(job.id))
    assert delivery[b"state"] == b"delivered" and delivery[b"attempts"] == b"2"
    assert await streams.zcard(webhook_signing.DUE_KEY) == 0
    assert await streams.ttl(webhook_signing.delivery_key(job.id)) > 0


async def test_a_job_is_scheduled_once_however_often_its_end_is_applied(streams, receiver, client):
    job = finished_job(receiver.url())
    assert await webhook_signing.schedule(streams, [job, job]) == 1
    assert await webhook_signing.schedule(streams, [job]) == 0
    # Jobs without a callback URL, or not finished, are not scheduled at all.
    unfinished = msgspec.structs.replace(job, id="b" * 24, status=JobStatus.RUNNING,
                                         finished_at=None)
    assert await webhook_signing.schedule(streams, [msgspec.structs.replace(
        job, id="c" * 24, callback_url=None), unfinished]) == 0
    sender = WebhookSender(settings(receiver), streams, client)
    await run_until(sender, lambda: receiver.calls)
    await asyncio.sleep(0.5)
    assert len(receiver.calls) == 1
    assert await webhook_signing.schedule(streams, [job]) == 0  # delivered: still remembered


async def test_a_redirect_is_never_followed_and_the_delivery_is_given_up_in_the_end(
        streams, receiver, client, caplog):
    receiver.answers = [302, 302, 302]
    job = finished_job(receiver.url())
    await webhook_signing.schedule(streams, [job])
    sender = WebhookSender(settings(receiver), streams, client)
    await run_until(sender, lambda: "given up after" in caplog.text)
    assert len(receiver.calls) == 3 and receiver.redirected == 0  # WEBHOOK_MAX_ATTEMPTS
    assert "given up after 3 attempts" in caplog.text and "answered 302" in caplog.text
    assert await streams.hget(webhook_signing.delivery_key(job.id), "state") == b"given up"
    assert await streams.zcard(webhook_signing.DUE_KEY) == 0


async def test_a_host_no_longer_allowed_gets_no_request(streams, receiver, client, caplog):
    job = finished_job(receiver.url())
    await webhook_signing.schedule(streams, [job])
    sender = WebhookSender(settings(receiver, webhook_allowed_hosts="hooks.example.com"),
                           streams, client)
    await run_until(sender, lambda: "given up" in caplog.text)
    assert receiver.calls == []
    assert "not in WEBHOOK_ALLOWED_HOSTS" in caplog.text


async def test_without_a_secret_nothing_is_delivered_and_the_deliveries_wait(
        streams, receiver, client, caplog):
    job = finished_job(receiver.url())
    await webhook_signing.schedule(streams, [job])
    sender = WebhookSender(settings(receiver, webhook_secret=""), streams, client)
    task = asyncio.create_task(sender.run())
    await asyncio.sleep(1.0)
    sender.stop()
    await task
    assert receiver.calls == []
    assert "WEBHOOK_SECRET is not set" in caplog.text
    assert await streams.zscore(webhook_signing.DUE_KEY, job.id) is not None  # still waiting


async def test_a_claim_left_by_a_dead_sender_is_delivered_after_its_lease(streams, receiver,
                                                                        client):
    job = finished_job(receiver.url())
    await webhook_signing.schedule(streams, [job])
    # A sender claims it and dies before delivering (its lease: 2 x 0.2 s + 5 s).
    dead = WebhookSender(settings(receiver, webhook_timeout=0.2), streams, client)
    assert await streams.eval(_CLAIM, 1, webhook_signing.DUE_KEY, 10, dead.lease_ms) == [
        job.id.encode()]
    claimed_at = time.monotonic()
    sender = WebhookSender(settings(receiver, webhook_timeout=0.2), streams, client)
    await run_until(sender, lambda: receiver.calls, within=20)
    assert receiver.calls[0].at - claimed_at >= 5.0 and receiver.calls[0].verified


def user(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_each_users_deliveries_are_signed_with_their_own_secret_and_no_other_verifies(
        streams, receiver, client):
    alice, bob = user("alice"), user("bob")
    receiver.secrets["/alice"] = alice_secret = await rotate(client, alice)
    receiver.secrets["/bob"] = bob_secret = await rotate(client, bob)
    jobs = [finished_job(receiver.url("/alice"), "a" * 24, alice),
            finished_job(receiver.url("/bob"), "b" * 24, bob)]
    await webhook_signing.schedule(streams, jobs)
    await run_until(WebhookSender(settings(receiver), streams, client),
                    lambda: len(receiver.calls) == 2)
    to = {call.path: call for call in receiver.calls}
    assert to["/alice"].verified and to["/bob"].verified  # each with their own secret
    bobs = to["/bob"]
    header = bobs.headers[webhook_signing.SIGNATURE_HEADER]
    # Alice (who runs a receiver, so holds her secret) cannot check, or make, Bob's ...
    assert not webhook_signing.verify(alice_secret, receiver.url("/bob"), bobs.body, header)
    # ... nor does WEBHOOK_SECRET itself sign anything.
    assert not webhook_signing.verify(SECRET, receiver.url("/bob"), bobs.body, header)
    assert alice_secret != bob_secret and SECRET not in (alice_secret, bob_secret)
    # The forgery of the review: Alice writes Bob's job as she likes, signs it with what
    # she holds, and POSTs it to Bob's receiver, which refuses it.
    forged = msgspec.json.encode(msgspec.structs.replace(jobs[1], result={"paid": 1_000_000}))
    t = int(time.time())
    async with aiohttp.ClientSession() as session:
        for key in (alice_secret, SECRET):
            header = webhook_signing.signature(key, receiver.url("/bob"), forged, t)
            async with session.post(receiver.url("/bob"), data=forged, headers={
                    webhook_signing.SIGNATURE_HEADER: header}):
                pass
    assert [call.verified for call in receiver.calls[2:]] == [False, False]


async def test_a_delivery_replayed_to_another_receiver_of_the_same_user_fails_there(
        streams, receiver, client):
    alice = user("alice")
    secret = await rotate(client, alice)
    receiver.secrets |= {"/alice": secret, "/alice-2": secret}  # one user, two receivers
    await webhook_signing.schedule(streams, [finished_job(receiver.url("/alice"), user=alice)])
    await run_until(WebhookSender(settings(receiver), streams, client),
                    lambda: receiver.calls)
    [real] = receiver.calls
    assert real.verified
    async with aiohttp.ClientSession() as session:  # the same bytes, to /alice-2
        async with session.post(receiver.url("/alice-2"), data=real.body, headers={
                name: real.headers[name] for name in (webhook_signing.SIGNATURE_HEADER,
                                                      webhook_signing.JOB_ID_HEADER)}):
            pass
    replayed = receiver.calls[1]
    assert replayed.path == "/alice-2" and not replayed.verified


async def test_after_a_rotation_deliveries_verify_with_the_new_secret_only(
        streams, receiver, client):
    alice = user("alice")
    receiver.secrets["/alice"] = old = await rotate(client, alice)
    sender = WebhookSender(settings(receiver), streams, client, key_cache=0.2)
    task = asyncio.create_task(sender.run())
    try:
        await webhook_signing.schedule(streams, [finished_job(receiver.url("/alice"), "a" * 24,
                                                       alice)])
        await until(task, lambda: receiver.calls)
        new = await rotate(client, alice)
        await asyncio.sleep(0.3)  # past the sender's key cache
        await webhook_signing.schedule(streams, [finished_job(receiver.url("/alice"), "b" * 24,
                                                       alice)])
        await until(task, lambda: len(receiver.calls) == 2)
    finally:
        sender.stop()
        await task
    before, after = receiver.calls
    assert before.verified  # with the old secret, before the rotation
    header = after.headers[webhook_signing.SIGNATURE_HEADER]
    assert webhook_signing.verify(new, receiver.url("/alice"), after.body, header)
    assert not webhook_signing.verify(old, receiver.url("/alice"), after.body, header)
    assert new != old and not after.verified  # the receiver still on the old one refuses it


async def test_an_owner_without_a_secret_gets_no_request_until_they_make_one(
        streams, receiver, client, caplog):
    carol = user("carol")  # never made a webhook secret
    job = finished_job(receiver.url("/alice"), user=carol)
    await webhook_signing.schedule(streams, [job])
    sender = WebhookSender(settings(receiver, webhook_max_attempts=20), streams, client,
                           key_cache=0.1)
    task = asyncio.create_task(sender.run())
    try:
        await until(task, lambda: "has no webhook secret yet" in caplog.text)
        assert receiver.calls == []  # not signed with WEBHOOK_SECRET: not sent at all
        receiver.secrets["/alice"] = await rotate(client, carol)
        await until(task, lambda: receiver.calls)
    finally:
        sender.stop()
        await task
    assert [call.verified for call in receiver.calls] == [True]


async def test_while_the_data_service_is_down_deliveries_wait_without_using_attempts(
        streams, receiver, caplog):
    job = finished_job(receiver.url())
    await webhook_signing.schedule(streams, [job])
    down = DataServiceClient(closed_url(), token="x", timeout=0.2, deadline=0.2)
    sender = WebhookSender(settings(receiver), streams, down)
    try:
        await run_until(sender, lambda: "did not give" in caplog.text)
    finally:
        await down.stop()
    assert receiver.calls == []
    assert await streams.hget(webhook_signing.delivery_key(job.id), "attempts") == b"0"
    assert await streams.zscore(webhook_signing.DUE_KEY, job.id) is not None  # still waiting


async def test_an_allowed_host_without_a_port_admits_no_other_port(streams, receiver, client,
                                                                   caplog):
    # WEBHOOK_ALLOWED_HOSTS=127.0.0.1 means port 80: the receiver on another port of that
    # host (think Redis on :6379, Docker on :2375) gets nothing.
    await webhook_signing.schedule(streams, [finished_job(receiver.url())])
    sender = WebhookSender(settings(receiver, webhook_allowed_hosts="127.0.0.1"), streams,
                           client)
    await run_until(sender, lambda: "given up" in caplog.text)
    assert receiver.calls == []
    assert "not in WEBHOOK_ALLOWED_HOSTS" in caplog.text


async def test_the_store_gives_key_ids_only_to_holders_of_the_service_token(
        client, data_service):
    await client.rotate_webhook_key("dave")
    async with httpx.AsyncClient(base_url=data_service, timeout=10) as anonymous:
        for method in ("GET", "POST"):
            answer = await anonymous.request(method, "/webhook-keys/dave")
            assert answer.status_code == 401 and "key_id" not in answer.text
    async with httpx.AsyncClient(base_url=data_service, timeout=10,
                                 headers={"X-Service-Token": TEST_SECRETS[
                                     "DATA_SERVICE_TOKEN"]}) as service:
        unknown = await service.get("/webhook-keys/nobody-ever")
        assert unknown.status_code == 404 and unknown.json()["status"] == 404
        bad = await service.post("/webhook-keys/a%20b")  # no job owner has such an id
        assert bad.status_code == 400 and bad.json()["status"] == 400
