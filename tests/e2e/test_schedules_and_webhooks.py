"""Scheduled jobs, webhooks and the result size limit through the whole system as real
processes, once on the Redis Stream queue and once on SQS.

* a job given a delay shows ``scheduled`` with its ``run_at``, starts no earlier, and
  succeeds; it survives its worker executor killed (kill -9) and Redis losing its data
  while it waits; cancelled while it waits, it never runs;
* a job with a callback URL is POSTed, signed with the secret its owner got from the
  kernel (``POST /api/v1/webhooks/secret``), to a receiver this test runs on 127.0.0.1: a
  500 is retried, a dispatcher killed mid-delivery does not lose it, and a host not
  allowed is refused at submit;
* a result over MAX_RESULT_BYTES fails the job for good.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

from backend import webhook_signing
from backend.local.embedded import free_port
from backend.rqjobs import scheduled_key
from tests.e2e.conftest import System, _start_system, wait_for
from tests.e2e.tasks import runs

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("system", ["redis", "sqs"],
                                                       indirect=True)]

SECRET = "e2e-webhook-secret"  # WEBHOOK_SECRET: the master no delivery is signed with


@dataclass
class Call:
    at: float
    job_id: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1, in a thread of its own. ``/ok`` answers 200,
    ``/fail-once`` 500 the first time per job, ``/hang-once`` hangs the first time."""

    port: int = field(default_factory=free_port)
    calls: list[Call] = field(default_factory=list)

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}"

    def of(self, job_id: str) -> list[Call]:
        return [call for call in self.calls if call.job_id == job_id]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        job_id = request.headers.get(webhook_signing.JOB_ID_HEADER, "")
        first = not self.of(job_id)
        self.calls.append(Call(time.monotonic(), job_id, dict(request.headers), body))
        mode = request.match_info["mode"]
        if first and mode == "fail-once":
            return web.Response(status=500)
        if first and mode == "hang-once":
            await asyncio.sleep(30)
        return web.Response(status=204)

    def serve(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            app = web.Application()
            app.router.add_post("/{mode}", self.handle)
            runner = web.AppRunner(app)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
            ready.set()
            loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        assert ready.wait(10)


@pytest.fixture(scope="module")
def receiver() -> Receiver:
    found = Receiver()
    found.serve()
    return found


@pytest.fixture(scope="module")
def system(request: pytest.FixtureRequest, log_dir: Path, receiver: Receiver,
           ) -> Iterator[System]:
    backend = request.param
    running = _start_system(backend, log_dir / f"hooks-{backend}", {
        "TASK_MODULES": "tests.e2e.tasks",
        "WEBHOOK_ALLOWED_HOSTS": f"127.0.0.1:{receiver.port}",
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_TIMEOUT": "2",
        "WEBHOOK_BACKOFF_BASE": "0.5",
        "MAX_RESULT_BYTES": "1024",
        "RECONCILE_INTERVAL": "1",
        "RECONCILE_AFTER": "2",
    })
    yield running
    running.stop_all()


@pytest.fixture(scope="module")
def hook_secret(system: System) -> str:
    """The e2e user's webhook secret, as the kernel shows it (once)."""
    answer = system.http.post(f"{system.api_url}/api/v1/webhooks/secret")
    assert answer.status_code == 201, answer.text
    return answer.json()["secret"]


def signed(secret: str, url: str, call: Call) -> bool:
    header = call.headers[webhook_signing.SIGNATURE_HEADER]
    return webhook_signing.verify(secret, url, call.body, header)


def submit(system: System, name: str = "count", params: dict[str, Any] | None = None,
           **fields: Any) -> str:
    answer = system.http.post(f"{system.api_url}/api/v1/job_executor/async", json={
        "job_name": name, "estimated_time": 1, "params": params or {}, **fields})
    assert answer.status_code == 200, answer.text
    return answer.json()["job_id"]


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def in_rq_schedule(system: System, job_id: str) -> bool:
    return system.redis.zscore(scheduled_key("standard"), job_id) is not None


def started_on_time(job: dict[str, Any]) -> None:
    # run_at is a whole second and the store keeps whole seconds: started_at >= run_at
    # holds exactly when the job started at or after its run_at.
    assert job["status"] == "succeeded", job
    assert moment(job["started_at"]) >= moment(job["run_at"]), job


def test_a_scheduled_job_waits_for_its_run_at_then_runs(system: System):
    job_id = submit(system, delay=3)
    job = system.job(job_id)
    assert job["status"] == "scheduled" and job["run_at"]
    wait_for(lambda: in_rq_schedule(system, job_id), 30, "the job in RQ's scheduled registry")
    time.sleep(max(0.0, (moment(job["run_at"]) - moment(job["created_at"])).total_seconds()
                   - 1.5))
    assert system.job(job_id)["status"] == "scheduled"
    assert runs(system.redis, [job_id])[job_id] == 0
    job = system.wait_final(job_id, 30)
    started_on_time(job)
    assert job["attempts"] == 1 and runs(system.redis, [job_id])[job_id] == 1


def test_a_scheduled_job_survives_its_worker_executor_killed(system: System):
    job_id = submit(system, delay=4)
    wait_for(lambda: in_rq_schedule(system, job_id), 30, "the job in RQ's scheduled registry")
    system.workers.kill()  # kill -9: its scheduler (and its lock) die with it
    system.start_workers()
    job = system.wait_final(job_id, 60)
    started_on_time(job)
    assert runs(system.redis, [job_id])[job_id] == 1


def test_a_scheduled_job_still_runs_at_its_time_after_redis_lost_its_data(system: System):
    system.workers.stop()
    job_id = submit(system, delay=12)
    wait_for(lambda: in_rq_schedule(system, job_id), 30, "the job in RQ's scheduled registry")
    system.restart_redis(keep_data=False)  # the scheduled registry and the RQ job: gone
    assert not in_rq_schedule(system, job_id) and not system.redis.exists(f"rq:job:{job_id}")
    system.start_workers()
    # The reconciler finds the scheduled job nothing holds and sends it again, in time.
    wait_for(lambda: in_rq_schedule(system, job_id), 30, "the job scheduled again")
    job = system.wait_final(job_id, 60)
    started_on_time(job)
    assert (moment(job["started_at"]) - moment(job["run_at"])).total_seconds() < 5
    assert runs(system.redis, [job_id])[job_id] == 1


def test_a_cancelled_scheduled_job_never_runs_and_its_webhook_says_so(
        system: System, receiver: Receiver, hook_secret: str):
    job_id = submit(system, delay=2, callback_url=receiver.url("ok"))
    wait_for(lambda: in_rq_schedule(system, job_id), 30, "the job in RQ's scheduled registry")
    cancelled = system.cancel(job_id)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert not in_rq_schedule(system, job_id)
    [call] = wait_for(lambda: receiver.of(job_id), 30, "the webhook of the cancel")
    assert msgspec.json.decode(call.body)["status"] == "cancelled"
    assert signed(hook_secret, receiver.url("ok"), call)
    time.sleep(4)  # well past its run_at
    job = system.job(job_id)
    assert (job["status"], job["attempts"], job["started_at"]) == ("cancelled", 0, None)
    assert runs(system.redis, [job_id])[job_id] == 0
    assert len(receiver.of(job_id)) == 1


def test_a_webhook_is_signed_and_retried_after_a_500(system: System, receiver: Receiver,
                                                     hook_secret: str):
    job_id = submit(system, "echo", {"hello": "hooks"}, callback_url=receiver.url("fail-once"))
    first, second = wait_for(lambda: receiver.of(job_id)[:2] if len(receiver.of(job_id)) >= 2
                             else None, 60, "the webhook and its retry")
    assert second.at - first.at >= 0.5 * 0.9  # WEBHOOK_BACKOFF_BASE, less the jitter
    job = system.job(job_id)
    assert job["status"] == "succeeded" and job["result"] == {"hello": "hooks"}
    # The job as GET /api/v1/jobs/{id} shows it, signed with its owner's secret (and URL),
    # never with WEBHOOK_SECRET itself.
    assert msgspec.json.decode(second.body) == job
    assert second.headers[webhook_signing.JOB_ID_HEADER] == job_id
    assert signed(hook_secret, receiver.url("fail-once"), second)
    assert not signed(SECRET, receiver.url("fail-once"), second)
    assert not signed(hook_secret, receiver.url("ok"), second)  # replayed elsewhere
    time.sleep(2)
    assert len(receiver.of(job_id)) == 2  # delivered: not sent again


def test_a_dispatcher_killed_mid_delivery_does_not_lose_the_webhook(
        system: System, receiver: Receiver, hook_secret: str):
    job_id = submit(system, "echo", {"n": 1}, callback_url=receiver.url("hang-once"))
    wait_for(lambda: receiver.of(job_id), 60, "the first delivery to arrive")
    system.dispatcher.kill()  # kill -9 while the receiver holds the request
    system.start_dispatcher()
    # Delivered again once the dead sender's claim expires (2 x WEBHOOK_TIMEOUT + 5 s).
    calls = wait_for(lambda: len(receiver.of(job_id)) >= 2 and receiver.of(job_id), 60,
                     "the webhook delivered again")
    assert signed(hook_secret, receiver.url("hang-once"), calls[1])
    assert msgspec.json.decode(calls[1].body)["status"] == "succeeded"


def test_a_callback_to_a_host_not_allowed_is_refused_at_submit(system: System):
    answer = system.http.post(f"{system.api_url}/api/v1/job_executor/async", json={
        "job_name": "echo", "estimated_time": 1, "callback_url": "http://example.com/hook"})
    assert answer.status_code == 422, answer.text
    assert "WEBHOOK_ALLOWED_HOSTS" in answer.json()["detail"]


def test_a_result_over_max_result_bytes_fails_the_job_for_good(system: System):
    job = system.wait_final(submit(system, "echo", {"text": "x" * 2000}), 60)
    assert job["status"] == "failed" and job["attempts"] == 1, job
    assert "MAX_RESULT_BYTES=1024" in job["error"] and job["result"] is None
