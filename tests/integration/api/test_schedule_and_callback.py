"""A submit's run_at / delay (a scheduled job) and callback_url (a webhook), through the
kernel on both queue backends: what is recorded and queued, every refusal a 4xx naming the
field and nothing recorded, and the cancel of a scheduled job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import msgspec
import pytest
import redis

from backend import markers, webhook_signing
from backend.jobs import Job, JobStatus
from backend.rqjobs import BatchEnqueuer, scheduled_key
from tests.integration.api.conftest import Kernel, OpenKernel, queue_of
from tests.problems import problem_of

redis_only = pytest.mark.parametrize("backend", ["redis"])
HOOKS = {"WEBHOOK_ALLOWED_HOSTS": "hooks.example.com,127.0.0.1:9999",
         "WEBHOOK_SECRET": "test-webhook-secret-of-the-kernel"}


async def make_webhook_secret(kernel: Kernel) -> None:
    made = await kernel.http.post("/api/v1/webhooks/secret")
    assert made.status_code == 201, made.text


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_a_job_due_later_is_recorded_scheduled_and_its_message_carries_run_at(
        kernel: Kernel, store: httpx.AsyncClient, user: str) -> None:
    before = datetime.now(UTC)
    delayed = await kernel.submit(user, delay=120)
    at = (before + timedelta(hours=2)).astimezone(timezone(timedelta(hours=2))).isoformat()
    timed = await kernel.submit(user, run_at=at)
    assert delayed.status_code == 200 and timed.status_code == 200, (delayed.text, timed.text)
    job = (await kernel.http.get(f"/api/v1/jobs/{delayed.json()['job_id']}")).json()
    assert job["status"] == "scheduled" and job["run_at"].endswith("Z")
    run_at = _parse(job["run_at"])
    assert run_at.microsecond == 0  # whole seconds, as RQ's scheduled registry keeps them
    assert before + timedelta(seconds=120) <= run_at <= datetime.now(UTC) + timedelta(
        seconds=121)
    other = (await store.get(f"/job/{timed.json()['job_id']}")).json()
    # Given with +02:00, shown in UTC; rounded up to the whole second.
    assert other["status"] == "scheduled"
    assert timedelta(0) <= _parse(other["run_at"]) - _parse(at) < timedelta(seconds=1)
    async with queue_of(kernel.settings) as queue:
        deliveries = await queue.receive(10, wait_seconds=5)
        messages = {d.message.job_id: d.message for d in deliveries}
        assert messages[job["id"]].run_at == run_at
        await queue.ack_many(deliveries)


@redis_only
@pytest.mark.parametrize("timing", [{"delay": 0}, {"run_at": "2001-01-01T00:00:00Z"}])
async def test_a_due_time_not_in_the_future_is_an_ordinary_queued_job(
        kernel: Kernel, user: str, timing: dict[str, object]) -> None:
    answer = await kernel.submit(user, **timing)
    assert answer.status_code == 200, answer.text
    job = (await kernel.http.get(f"/api/v1/jobs/{answer.json()['job_id']}")).json()
    assert job["status"] == "queued"
    assert abs(_parse(job["run_at"]) - datetime.now(UTC)) < timedelta(seconds=30)


@redis_only
@pytest.mark.parametrize(("timing", "field", "words"), [
    ({"delay": 5, "run_at": "2030-01-01T00:00:00Z"}, "run_at", "not both"),
    ({"run_at": "2030-01-01T00:00:00"}, "run_at", "time zone"),
    ({"run_at": "next tuesday"}, "run_at", "date"),
    ({"delay": -1}, "delay", "at least 0"),
    ({"delay": "60"}, "delay", "number"),
    ({"delay": 31 * 86400}, "delay", "MAX_SCHEDULE_AHEAD"),
    ({"run_at": "2999-01-01T00:00:00+00:00"}, "run_at", "at most 30 days"),
])
async def test_a_bad_schedule_is_a_400_naming_the_field_and_records_nothing(
        kernel: Kernel, user: str, timing: dict[str, object], field: str, words: str) -> None:
    answer = await kernel.submit(user, **timing)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert field in body["detail"] and words in body["detail"], body
    assert body["errors"][0]["field"] == field
    assert (await kernel.http.get("/api/v1/jobs")).json()["total"] == 0


@redis_only
async def test_the_schedule_limit_is_a_setting(open_kernel: OpenKernel, user: str) -> None:
    kernel = await open_kernel(MAX_SCHEDULE_AHEAD="60")
    assert (await kernel.submit(user, delay=60)).status_code == 200
    refused = await kernel.submit(user, delay=61)
    assert refused.status_code == 400 and "at most 60 s (MAX_SCHEDULE_AHEAD)" in \
        refused.json()["detail"]


@redis_only
async def test_without_allowed_hosts_a_callback_url_is_a_422_naming_the_setting(
        kernel: Kernel, user: str) -> None:
    answer = await kernel.submit(user, callback_url="https://hooks.example.com/done")
    assert answer.status_code == 422, answer.text
    assert "WEBHOOK_ALLOWED_HOSTS" in answer.json()["detail"]
    assert problem_of(answer)["errors"][0]["field"] == "callback_url"
    assert (await kernel.http.get("/api/v1/jobs")).json()["total"] == 0


@redis_only
@pytest.mark.parametrize(("url", "words"), [
    ("https://evil.example.com/done", "not in WEBHOOK_ALLOWED_HOSTS"),
    ("https://sub.hooks.example.com/done", "not in WEBHOOK_ALLOWED_HOSTS"),
    ("http://127.0.0.1:9998/done", "not in WEBHOOK_ALLOWED_HOSTS"),  # only port 9999
    ("http://127.0.0.1/done", "not in WEBHOOK_ALLOWED_HOSTS"),
    ("ftp://hooks.example.com/done", "http or https"),
    ("https://user:secret@hooks.example.com/done", "user name or password"),
    ("hooks.example.com/done", "http or https"),
    ("https://hooks.example.com:99999/", "not a valid URL"),
])
async def test_a_callback_url_not_allowed_is_a_422_saying_why(
        open_kernel: OpenKernel, user: str, url: str, words: str) -> None:
    kernel = await open_kernel(**HOOKS)
    answer = await kernel.submit(user, callback_url=url)
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["detail"]
    assert (await kernel.http.get("/api/v1/jobs")).json()["total"] == 0


@redis_only
async def test_an_allowed_callback_url_is_kept_on_the_job(open_kernel: OpenKernel,
                                                          user: str) -> None:
    kernel = await open_kernel(**HOOKS)
    await make_webhook_secret(kernel)
    for url in ("https://hooks.example.com/done?x=1", "HTTPS://HOOKS.example.com:443/",
                "http://127.0.0.1:9999/hook"):
        answer = await kernel.submit(user, callback_url=url)
        assert answer.status_code == 200, answer.text
        job = (await kernel.http.get(f"/api/v1/jobs/{answer.json()['job_id']}")).json()
        assert job["callback_url"] == url and job["status"] == "queued"


@redis_only
async def test_a_callback_url_needs_its_owners_webhook_secret_first(open_kernel: OpenKernel,
                                                                   user: str) -> None:
    """Deliveries are signed with the owner's own secret and never a shared one: without
    a secret, a job with a callback URL would have webhooks nobody could send."""
    kernel = await open_kernel(**HOOKS)
    url = "https://hooks.example.com/done"
    refused = await kernel.submit(user, callback_url=url)
    assert refused.status_code == 422, refused.text
    assert problem_of(refused)["errors"][0]["field"] == "callback_url"
    assert "/api/v1/webhooks/secret" in refused.json()["detail"]
    batch = await kernel.http.post("/api/v1/jobs/batch", json={"jobs": [
        {"job_name": "echo", "estimated_time": 1, "callback_url": url},
        {"job_name": "echo", "estimated_time": 1}]})
    assert batch.status_code == 207, batch.text
    first, second = batch.json()["results"]
    assert first["status"] == 422 and first["errors"][0]["field"] == "callback_url"
    assert second["job_id"]
    assert (await kernel.http.get("/api/v1/jobs")).json()["total"] == 1  # the plain one

    await make_webhook_secret(kernel)
    accepted = await kernel.submit(user, callback_url=url)
    assert accepted.status_code == 200, accepted.text


async def test_cancelling_a_scheduled_job_takes_it_out_of_rq_and_it_stays_stopped(
        open_kernel: OpenKernel, user: str) -> None:
    kernel = await open_kernel(**HOOKS)
    await make_webhook_secret(kernel)
    answer = await kernel.submit(user, delay=3600, callback_url="https://hooks.example.com/x")
    job_id = answer.json()["job_id"]
    connection = redis.Redis.from_url(kernel.settings.redis.redis_url)
    async with queue_of(kernel.settings) as queue:  # what the dispatcher does with it
        [delivery] = await queue.receive(wait_seconds=5)
        assert BatchEnqueuer(connection, kernel.settings.worker).enqueue(
            [delivery.message]) == [True]
        await queue.ack(delivery)
    assert connection.zscore(scheduled_key("standard"), job_id) is not None

    cancelled = await kernel.http.post(f"/api/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert connection.zscore(scheduled_key("standard"), job_id) is None
    assert connection.hget(f"rq:job:{job_id}", "status") == b"canceled"
    # The stop marker outlives the job's run_at (plus DONE_TTL), whatever else happens.
    assert connection.get(markers.stop_key(job_id)) == b"cancelled"
    assert connection.ttl(markers.stop_key(job_id)) > 3600 + kernel.settings.worker.done_ttl - 60
    # A cancel finishes the job: its webhook is scheduled, with the job as the API shows it.
    delivery = connection.hgetall(webhook_signing.delivery_key(job_id))
    sent = msgspec.json.decode(delivery[b"body"], type=Job)
    assert (sent.id, sent.status) == (job_id, JobStatus.CANCELLED)
    assert connection.zscore(webhook_signing.DUE_KEY, job_id) is not None
    connection.close()
