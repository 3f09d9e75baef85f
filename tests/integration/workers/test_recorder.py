"""The recorder: reports from the stream reach the real data service in batches, and
none is lost while the data service (or a recorder) is down."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from bson import ObjectId

from backend import webhook_signing
from backend.dispatcher.recorder import Recorder
from backend.errors import DataServiceError
from backend.jobs import Job, JobStatus, NewJob, QueueMessage
from backend.queues.redis_stream import RedisStreamQueue
from backend.reports import RECORDER_GROUP, REPORT_FIELD, REPORT_STREAM, Report, encode_report
from backend.store.client import DataServiceClient
from tests.integration.api.conftest import closed_url
from tests.services import SERVICE_HEADERS, TEST_SECRETS, python_module


@pytest.fixture(scope="module")
def data_service(mongo_url: str, log_dir: Path):
    from backend.local.embedded import free_port

    port = free_port()
    env = {"MONGODB_URL": mongo_url, "DATABASE_NAME": f"rec_{port}", "MONGODB_TIMEOUT_MS": "2000"}
    proc = python_module(f"store-rec-{port}", "backend.store", log_dir, env, "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    proc.start().wait_http(f"{url}/readyz", timeout=60)
    yield url
    proc.stop()


@pytest.fixture
async def parts(rq_redis, rq_redis_url, data_service):
    streams = aioredis.Redis.from_url(rq_redis_url)
    client = DataServiceClient(data_service, token=TEST_SECRETS["DATA_SERVICE_TOKEN"],
                               timeout=2, deadline=1)
    queue = RedisStreamQueue(rq_redis_url, "rec", "rec-dlq", visibility_timeout=5,
                             max_receives=5, wait_seconds=0)
    yield streams, client, queue
    await queue.close()
    await client.stop()
    await streams.aclose()


async def new_jobs(client: DataServiceClient, count: int) -> list[str]:
    ids = [str(ObjectId()) for _ in range(count)]
    await client.create_jobs([NewJob(id=i, name="echo", user_id="rec", status=JobStatus.QUEUED)
                              for i in ids])
    return ids


async def append(streams, *reports: Report) -> None:
    for report in reports:
        await streams.xadd(REPORT_STREAM, {REPORT_FIELD: encode_report(report)})


def ran(job_id: str, attempt: int = 1, **end) -> list[Report]:
    now = datetime.now(UTC)
    return [Report(job_id=job_id, attempt=attempt, at=now, status=JobStatus.RUNNING,
                   worker_id="w"),
            Report(job_id=job_id, attempt=attempt, at=now,
                   **({"status": JobStatus.SUCCEEDED, "result": {"id": job_id}} | end))]


async def test_a_batch_of_reports_reaches_the_store_and_leaves_the_stream(parts):
    streams, client, queue = parts
    ids = await new_jobs(client, 20)
    for job_id in ids:
        await append(streams, *ran(job_id))
    recorder = Recorder(streams, client, queue, batch=500)
    assert await recorder.record_once() == 40
    for job in await client.get_jobs(ids):
        assert (job.status, job.result, job.attempts) == ("succeeded", {"id": job.id}, 1)
    # Acked with the next read (or at the stop): one round trip per batch.
    assert await recorder.record_once() == 0
    assert await streams.xlen(REPORT_STREAM) == 0


async def test_nothing_is_lost_while_the_data_service_is_down(parts, rq_redis_url):
    streams, client, queue = parts
    ids = await new_jobs(client, 5)
    for job_id in ids:
        await append(streams, *ran(job_id))
    down = DataServiceClient(closed_url(), timeout=1, deadline=0.3)
    stuck = Recorder(streams, down, queue, consumer="stuck")
    with pytest.raises(DataServiceError):
        await stuck.record_once()
    pending = await streams.xpending(REPORT_STREAM, RECORDER_GROUP)
    assert pending["pending"] == 10  # held, not acked
    # Another recorder takes over what the stuck one holds once it has idled long enough.
    other = Recorder(streams, client, queue, consumer="other", reclaim_idle=0.2)
    await asyncio.sleep(0.3)
    assert await other.record_once() == 10
    await other.flush_acks()
    assert {job.status for job in await client.get_jobs(ids)} == {"succeeded"}
    assert (await streams.xpending(REPORT_STREAM, RECORDER_GROUP))["pending"] == 0
    await down.stop()


async def test_a_failed_jobs_dead_letter_goes_to_the_dead_letter_queue(parts):
    streams, client, queue = parts
    [job_id] = await new_jobs(client, 1)
    message = QueueMessage(job_id=job_id, name="echo")
    await append(streams, *ran(job_id, status=JobStatus.FAILED, error="disk on fire",
                               dead_letter=message))
    await Recorder(streams, client, queue).record_once()
    assert (await client.get_job(job_id)).status == JobStatus.FAILED
    [entry] = await queue.dead_letter_entries()
    assert entry.message == message and entry.reason == "disk on fire"


async def test_an_unreadable_entry_is_dropped_and_the_rest_recorded(parts, caplog):
    streams, client, queue = parts
    [job_id] = await new_jobs(client, 1)
    await streams.xadd(REPORT_STREAM, {REPORT_FIELD: b"{not json"})
    await append(streams, *ran(job_id))
    recorder = Recorder(streams, client, queue)
    await recorder.record_once()
    await recorder.flush_acks()
    assert (await client.get_job(job_id)).status == JobStatus.SUCCEEDED
    assert await streams.xlen(REPORT_STREAM) == 0
    assert "unreadable report" in caplog.text


async def test_recorders_side_by_side_record_every_report_once(parts, rq_redis_url):
    streams, client, queue = parts
    ids = await new_jobs(client, 200)
    for job_id in ids:
        await append(streams, *ran(job_id))
    recorders = [Recorder(aioredis.Redis.from_url(rq_redis_url), client, queue, batch=25,
                          consumer=f"r{n}") for n in range(3)]

    async def drain(recorder: Recorder) -> None:
        while await recorder.record_once():
            pass

    await asyncio.gather(*(drain(r) for r in recorders))
    assert sum(r.recorded for r in recorders) == 400
    assert all(r.recorded > 0 for r in recorders)
    assert {job.status for job in await client.get_jobs(ids)} == {"succeeded"}
    for recorder in recorders:
        await recorder.redis.aclose()


async def test_the_store_answers_what_it_recorded(data_service, parts):
    # The recorder's view and the public view agree.
    streams, client, queue = parts
    [job_id] = await new_jobs(client, 1)
    await append(streams, *ran(job_id))
    await Recorder(streams, client, queue).record_once()
    async with httpx.AsyncClient(base_url=data_service, headers=SERVICE_HEADERS) as http:
        assert (await http.get(f"/job/{job_id}")).json()["status"] == "succeeded"


async def test_jobs_with_a_callback_url_get_one_webhook_when_a_batch_finishes_them(parts):
    streams, client, queue = parts
    hooked, plain, running = (str(ObjectId()) for _ in range(3))
    url = "http://127.0.0.1:9/hook"
    await client.create_jobs([
        NewJob(id=hooked, name="echo", user_id="rec", status=JobStatus.QUEUED,
               callback_url=url),
        NewJob(id=plain, name="echo", user_id="rec", status=JobStatus.QUEUED),
        NewJob(id=running, name="echo", user_id="rec", status=JobStatus.QUEUED,
               callback_url=url)])
    # The end report of a job with a callback URL says so (the worker takes it from the
    # queue message), so the store looks up only those jobs.
    await append(streams, *ran(hooked, callback=True), *ran(plain), ran(running)[0])
    recorder = Recorder(streams, client, queue, batch=500)
    assert await recorder.record_once() == 5
    due = await streams.zrange(webhook_signing.DUE_KEY, 0, -1)
    assert due == [hooked.encode()]  # finished and with a URL: only that one
    delivery = await streams.hgetall(webhook_signing.delivery_key(hooked))
    assert delivery[b"url"] == url.encode()
    sent = msgspec.json.decode(delivery[b"body"], type=Job)
    assert sent == await client.get_job(hooked)  # the job as the API shows it
    assert (sent.status, sent.result) == (JobStatus.SUCCEEDED, {"id": hooked})
    # The same end applied again (a batch redelivered after a crash): still one delivery.
    await append(streams, ran(hooked, callback=True)[1])
    assert await recorder.record_once() == 1
    assert await streams.zrange(webhook_signing.DUE_KEY, 0, -1) == [hooked.encode()]
