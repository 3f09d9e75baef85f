"""rq-dashboard's finished list: a job a real worker finished is listed, with its result,
for RQ_RESULT_TTL (what the dispatcher gives each RQ job), then gone from the list and the
count alike; the page says how long RQ keeps ended jobs, and where every job stays."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from bson import ObjectId

from backend.jobs import QueueMessage
from backend.rqjobs import enqueue
from backend.workers.connections import WorkerConnections, set_connections
from backend.workers.worker import TaskWorker
from tests.integration.dashboard.conftest import Dashboard, start_dashboard
from tests.integration.workers.conftest import (  # noqa: F401 - fixture
    keep_signal_handlers,
    worker_settings,
)

SHORT, LONG = 3, 600  # RQ_RESULT_TTL of the two jobs, seconds


@pytest.fixture(scope="module")
def short_ttl_dashboard(dash_redis_url: str, log_dir: Path) -> Iterator[Dashboard]:
    yield from start_dashboard(dash_redis_url, log_dir, RQ_RESULT_TTL=str(SHORT),
                               RQ_FAILURE_TTL="7200")


@pytest.fixture
def connections(rq_redis: redis.Redis, dash_redis_url: str,
                keep_signal_handlers: None) -> Iterator[WorkerConnections]:  # noqa: F811
    """The worker connections of this process (run_job uses them), on the test's Redis."""
    made = WorkerConnections(worker_settings(dash_redis_url), connection=rq_redis)
    set_connections(made)
    yield made
    made.__dict__.pop("redis", None)  # the test owns rq_redis
    made.close()
    set_connections(None)


def _finish(connections: WorkerConnections, result_ttl: int) -> str:
    """A job enqueued as the dispatcher does with RQ_RESULT_TTL ``result_ttl``, run by a
    real worker to its end; returns its id."""
    job_id = str(ObjectId())
    settings = worker_settings("redis://unused", rq_result_ttl=result_ttl).worker
    assert enqueue(connections.redis, QueueMessage(job_id=job_id, name="echo",
                                                   params={"n": result_ttl}), settings)
    TaskWorker(["standard"], connection=connections.redis,
               heartbeat=connections.settings.worker.worker_heartbeat).work(burst=True)
    return job_id


def _finished(http: httpx.Client) -> tuple[set[str], int]:
    """The ids the finished list shows, and the finished count of the queues page."""
    listed = http.get("/0/data/jobs/standard/finished/50/asc/1.json")
    assert listed.status_code == 200, listed.text
    queues = http.get("/0/data/queues.json")
    assert queues.status_code == 200, queues.text
    [standard] = [q for q in queues.json()["queues"] if q["name"] == "standard"]
    return {job["id"] for job in listed.json()["jobs"]}, standard["finished_job_registry_count"]


def test_a_finished_job_is_listed_with_its_result_for_rq_result_ttl(
        short_ttl_dashboard: Dashboard, connections: WorkerConnections) -> None:
    brief = _finish(connections, SHORT)
    kept = _finish(connections, LONG)
    finished_at = time.monotonic()
    with short_ttl_dashboard.client() as http:
        assert _finished(http) == ({brief, kept}, 2)
        for job_id in (brief, kept):
            job = http.get(f"/0/data/job/{job_id}.json").json()
            # RQ's result of a job is how it ended; the task's own result is the store's.
            assert (job["status"], job["result"]) == ("finished", "succeeded"), job

        def expired() -> bool:
            return (_finished(http)[0] == {kept}
                    and http.get(f"/0/data/job/{brief}.json").status_code == 404)

        deadline = finished_at + SHORT + 10
        while not expired() and time.monotonic() < deadline:
            time.sleep(0.2)
        # Gone after its RQ_RESULT_TTL, and the count (RQ's registry keeps the id until
        # its maintenance) says so too; the job with the longer setting is still there.
        assert expired() and time.monotonic() - finished_at >= SHORT - 1
        assert _finished(http) == ({kept}, 1)
        job = http.get(f"/0/data/job/{kept}.json").json()
        assert (job["status"], job["result"]) == ("finished", "succeeded"), job
        page = http.get("/0/view/jobs/standard/finished/8/asc/1")
    assert page.status_code == 200, page.text
    assert f"<code>RQ_RESULT_TTL</code> = {SHORT} s" in page.text
    assert "<code>RQ_FAILURE_TTL</code> = 7200 s" in page.text
    assert "taskbroker show &lt;job-id&gt;" in page.text


def test_the_queued_list_says_nothing_of_how_long_ended_jobs_are_kept(
        short_ttl_dashboard: Dashboard) -> None:
    with short_ttl_dashboard.client() as http:
        page = http.get("/0/view/jobs/standard/queued/8/asc/1")
    assert page.status_code == 200, page.text
    assert "RQ_RESULT_TTL" not in page.text


def test_expired_ids_rq_still_holds_are_left_out_of_every_ended_count(
        short_ttl_dashboard: Dashboard, rq_redis: redis.Redis) -> None:
    # What RQ's registries hold between a job's expiry and RQ's maintenance (ten minutes):
    # ids scored in the past, their job hashes gone. rq-dashboard counted them (it said 22
    # over an empty finished list).
    rq_redis.sadd("rq:queues", "rq:queue:standard")
    now = time.time()
    for registry in ("finished", "failed", "canceled"):
        rq_redis.zadd(f"rq:{registry}:standard", {f"gone-{n}": now - 5 for n in range(22)})
    with short_ttl_dashboard.client() as http:
        [standard] = [q for q in http.get("/0/data/queues.json").json()["queues"]
                      if q["name"] == "standard"]
    assert (standard["finished_job_registry_count"], standard["failed_job_registry_count"],
            standard["canceled_job_registry_count"]) == (0, 0, 0)
