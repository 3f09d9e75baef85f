"""The reconciler: unfinished jobs that neither the queue nor RQ holds are sent again;
stopped ones are ended instead; nothing held is touched."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from bson import ObjectId

from backend import markers
from backend.dispatcher.dispatch import drained_key
from backend.dispatcher.reconciler import UNFINISHED, Reconciler
from backend.jobs import JobStatus, NewJob, QueueMessage
from backend.queues.redis_stream import RedisStreamQueue
from backend.reports import Report
from backend.rqjobs import enqueue, queue_key, scheduled_key
from backend.settings import QueueSettings
from backend.store.client import DataServiceClient
from tests.integration.workers.conftest import reports, worker_settings
from tests.integration.workers.test_recorder import data_service  # noqa: F401 - fixture
from tests.services import TEST_SECRETS

AFTER = 1.0  # RECONCILE_AFTER of these tests
# nx-27017 compares timestamps to the whole second: age jobs a second more than needed.
AGE = AFTER + 2.1


@pytest.fixture
async def parts(rq_redis, rq_redis_url, data_service):  # noqa: F811
    settings = worker_settings(rq_redis_url, reconcile_after=AFTER, reconcile_interval=0.2)
    settings.queue = QueueSettings(standard_queue_name=f"rc-{ObjectId()}")
    streams = aioredis.Redis.from_url(rq_redis_url)
    client = DataServiceClient(data_service, token=TEST_SECRETS["DATA_SERVICE_TOKEN"],
                               timeout=2, deadline=1)
    queue = RedisStreamQueue(rq_redis_url, settings.queue.standard_queue_name, "rc-dlq",
                             visibility_timeout=5, max_receives=5, wait_seconds=0)
    await queue.ensure()
    # One data service serves the module: start every test from no unfinished jobs.
    for status in UNFINISHED:
        for job in await client.stale_jobs(status, older_than=0, limit=1000):
            await client.delete_job(job.id)
    reconciler = Reconciler(settings, streams, client, queue, name="rc-test")
    yield reconciler, rq_redis, client, queue
    await queue.close()
    await client.stop()
    await streams.aclose()


async def record(client: DataServiceClient, status: JobStatus = JobStatus.QUEUED,
                 count: int = 1, run_at: datetime | None = None) -> list[str]:
    ids = [str(ObjectId()) for _ in range(count)]
    await client.create_jobs([NewJob(id=i, name="echo", user_id="rc", status=status,
                                     params={"n": 1}, run_at=run_at) for i in ids])
    return ids


async def age_and_drain(rq_redis, queue) -> None:
    """Let the jobs age past RECONCILE_AFTER, then note the queue drained (as the
    dispatcher does when a receive comes back short)."""
    await asyncio.sleep(AGE)
    rq_redis.set(drained_key(queue.name), int(time.time() * 1000))


async def sent_again(queue) -> list[QueueMessage]:
    return [d.message for d in await queue.receive(10, wait_seconds=0)]


async def test_a_queued_job_nothing_holds_is_sent_again_once(parts):
    reconciler, rq_redis, client, queue = parts
    [job_id] = await record(client)
    await age_and_drain(rq_redis, queue)
    assert await reconciler.reconcile_once() == 1
    [message] = await sent_again(queue)
    assert (message.job_id, message.attempt, message.params) == (job_id, 1, {"n": 1})
    assert await reconciler.reconcile_once() == 0  # not again within RECONCILE_AFTER


async def test_jobs_held_by_rq_or_finished_are_left_alone(parts):
    reconciler, rq_redis, client, queue = parts
    held, done = await record(client, count=2)
    enqueue(rq_redis, QueueMessage(job_id=held, name="echo"), reconciler.settings.worker)
    rq_redis.set(markers.done_key(done), b"1")
    await age_and_drain(rq_redis, queue)
    assert await reconciler.reconcile_once() == 0
    assert await sent_again(queue) == []


@pytest.mark.parametrize(("marker", "ends_as"), [
    (markers.CANCELLED, JobStatus.CANCELLED),
    (markers.void_reason("the job store did not answer"), JobStatus.FAILED),
])
async def test_a_stopped_job_is_ended_never_sent(parts, marker, ends_as):
    reconciler, rq_redis, client, queue = parts
    [job_id] = await record(client)
    rq_redis.set(markers.stop_key(job_id), marker)
    await age_and_drain(rq_redis, queue)
    assert await reconciler.reconcile_once() == 1
    assert await sent_again(queue) == []
    [end] = reports(rq_redis, job_id)
    assert end.status is ends_as


async def test_a_running_job_redis_forgot_is_sent_again_as_its_next_attempt(parts):
    reconciler, rq_redis, client, queue = parts
    [job_id] = await record(client)
    await client.apply_reports([Report(job_id=job_id, attempt=1, at=datetime.now(UTC),
                                       status=JobStatus.RUNNING)])
    await age_and_drain(rq_redis, queue)
    assert await reconciler.reconcile_once() == 1
    [message] = await sent_again(queue)
    assert message.attempt == 2


async def test_nothing_is_sent_while_old_reports_wait_to_be_recorded(parts):
    reconciler, rq_redis, client, queue = parts
    await record(client)
    rq_redis.xadd("taskbroker:reports", {b"r": b"{}"}, id=f"{int(time.time() * 1000) - 60_000}-0")
    await age_and_drain(rq_redis, queue)
    assert await reconciler.reconcile_once() == 0
    assert await sent_again(queue) == []


async def test_nothing_is_sent_before_the_queue_was_seen_drained(parts):
    reconciler, rq_redis, client, queue = parts
    await record(client)
    await asyncio.sleep(AGE)
    rq_redis.set(drained_key(queue.name), int(time.time() * 1000) - 60_000)
    assert await reconciler.reconcile_once() == 0


async def test_one_replica_reconciles_each_round(parts):
    reconciler = parts[0]
    other = Reconciler(reconciler.settings, reconciler.redis, reconciler.client,
                       reconciler.queue, name="rc-other")
    interval = reconciler.settings.worker.reconcile_interval
    assert await reconciler._lead(interval) is True
    assert await other._lead(interval) is False


async def test_a_scheduled_job_held_in_rqs_scheduled_registry_is_left_alone(parts):
    reconciler, rq_redis, client, queue = parts
    run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    [job_id] = await record(client, JobStatus.SCHEDULED, run_at=run_at)
    assert enqueue(rq_redis, QueueMessage(job_id=job_id, name="echo", run_at=run_at),
                   reconciler.settings.worker)
    assert rq_redis.zscore(scheduled_key("standard"), job_id) == run_at.timestamp()
    await age_and_drain(rq_redis, queue)
    assert await reconciler.reconcile_once() == 0
    assert await sent_again(queue) == []


async def test_a_scheduled_job_redis_lost_is_sent_again_with_its_run_at(parts):
    reconciler, rq_redis, client, queue = parts
    run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    [job_id] = await record(client, JobStatus.SCHEDULED, run_at=run_at)
    await age_and_drain(rq_redis, queue)
    assert await reconciler.reconcile_once() == 1
    [message] = await sent_again(queue)
    assert (message.job_id, message.attempt, message.run_at) == (job_id, 1, run_at)


async def test_a_scheduled_rq_job_missing_from_the_registry_is_replaced_and_sent_again(parts):
    # Say the scheduled registry was emptied from rq-dashboard: RQ's job hash alone would
    # make the dispatcher's unique enqueue a no-op, and the job would never run.
    reconciler, rq_redis, client, queue = parts
    run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    [job_id] = await record(client, JobStatus.SCHEDULED, run_at=run_at)
    enqueue(rq_redis, QueueMessage(job_id=job_id, name="echo", run_at=run_at),
            reconciler.settings.worker)
    rq_redis.delete(scheduled_key("standard"))
    await age_and_drain(rq_redis, queue)
    assert await reconciler.reconcile_once() == 1
    assert not rq_redis.exists(f"rq:job:{job_id}")
    [message] = await sent_again(queue)
    assert message.run_at == run_at
    # What the dispatcher then does with it: back in the registry, due at run_at.
    assert enqueue(rq_redis, message, reconciler.settings.worker)
    assert rq_redis.zscore(scheduled_key("standard"), job_id) == run_at.timestamp()


async def test_a_queued_rq_job_its_queue_no_longer_lists_is_replaced_and_sent_again(parts):
    # A worker takes the next job off its RQ queue with the end of the job before, and
    # dies, or loses Redis, before it starts it or puts it back: RQ's job hash still says
    # queued, no queue lists it, and the dispatcher's unique enqueue would be a no-op.
    reconciler, rq_redis, client, queue = parts
    taken, listed, intermediate = await record(client, count=3)
    for job_id in (taken, listed, intermediate):
        assert enqueue(rq_redis, QueueMessage(job_id=job_id, name="echo"),
                       reconciler.settings.worker)
    rq_redis.lrem(queue_key("standard"), 1, taken)
    # A single-queue worker moves what it takes to RQ's intermediate list: still held.
    rq_redis.lrem(queue_key("standard"), 1, intermediate)
    rq_redis.rpush(queue_key("standard") + ":intermediate", intermediate)
    await age_and_drain(rq_redis, queue)
    # The first look may catch a job in the hand of a live worker, about to start it.
    assert await reconciler.reconcile_once() == 0
    assert await sent_again(queue) == []
    assert await reconciler.reconcile_once() == 1  # still unlisted a round later: lost
    [message] = await sent_again(queue)
    assert (message.job_id, message.attempt) == (taken, 1)
    assert not rq_redis.exists(f"rq:job:{taken}")
    assert rq_redis.hget(f"rq:job:{listed}", "status") == b"queued"
    # What the dispatcher then does with it: on the queue again, for a worker to run.
    assert enqueue(rq_redis, message, reconciler.settings.worker)
    assert rq_redis.lrange(queue_key("standard"), 0, -1) == [listed.encode(), taken.encode()]


async def test_a_queued_rq_job_a_worker_took_and_then_started_is_never_sent_again(parts):
    reconciler, rq_redis, client, queue = parts
    [job_id] = await record(client)
    assert enqueue(rq_redis, QueueMessage(job_id=job_id, name="echo"),
                   reconciler.settings.worker)
    rq_redis.lrem(queue_key("standard"), 1, job_id)  # taken by a worker ...
    await age_and_drain(rq_redis, queue)
    assert await reconciler.reconcile_once() == 0
    rq_redis.hset(f"rq:job:{job_id}", "status", "started")  # ... which then started it
    assert await reconciler.reconcile_once() == 0
    assert await sent_again(queue) == []
    assert rq_redis.exists(f"rq:job:{job_id}")
