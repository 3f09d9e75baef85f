"""The data service as a real process (``python -m backend.store``) over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from backend.errors import JobNotFoundError, TransitionError
from backend.jobs import CreateJob, JobStatus, UpdateJob
from backend.local.embedded import free_port
from backend.store.client import DataServiceClient
from tests.services import SERVICE_HEADERS, TEST_SECRETS, ManagedProcess, python_module, start_mongo


def start_store(log_dir: Path, mongo_url: str, database: str, **env: str) -> tuple[
        ManagedProcess, str]:
    """``python -m backend.store --host 127.0.0.1 --port P``, configured by environment."""
    port = free_port()
    settings = {"MONGODB_URL": mongo_url, "DATABASE_NAME": database, **env}
    proc = python_module(f"store-{port}", "backend.store", log_dir, settings,
                         "--host", "127.0.0.1", "--port", str(port)).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_http(f"{url}/healthz", timeout=60)
    return proc, url


@pytest.fixture(scope="module")
def store_url(mongo_url: str, log_dir: Path) -> Iterator[str]:
    proc, url = start_store(log_dir, mongo_url, "store_process", MAX_BODY_BYTES="4096")
    yield url
    assert proc.stop() == 0, proc.log_tail()


def _new_running_job(http: httpx.Client, user: str) -> str:
    job_id = http.post("/job/", json={"name": "echo", "user_id": user}).json()["id"]
    assert http.put(f"/job/{job_id}", json={"status": "running"}).status_code == 200
    return job_id


async def test_the_data_service_client_against_the_process(store_url: str) -> None:
    client = DataServiceClient(store_url, token=TEST_SECRETS['DATA_SERVICE_TOKEN'], deadline=5)
    try:
        job_id = await client.create_empty_job(CreateJob(name="echo", user_id="proc-user",
                                                          params={"n": 1}))
        job = await client.get_job(job_id)
        assert job.status == JobStatus.CREATED and job.params == {"n": 1}
        assert job.created_at.utcoffset() is not None and job.created_at.utcoffset().seconds == 0
        job = await client.update_job(job_id, UpdateJob(status=JobStatus.RUNNING, progress=30))
        assert job.status == JobStatus.RUNNING and job.progress == 30
        job = await client.update_job(job_id, UpdateJob(status=JobStatus.CANCELLED))
        with pytest.raises(TransitionError) as refused:
            await client.update_job(job_id, UpdateJob(status=JobStatus.SUCCEEDED))
        assert refused.value.current == "cancelled"
        page = await client.list_jobs("proc-user", status=JobStatus.CANCELLED)
        assert job_id in [item.id for item in page.items]
        assert await client.ready()
        await client.delete_job(job_id)
        with pytest.raises(JobNotFoundError):
            await client.get_job(job_id)
    finally:
        await client.stop()


def test_routes_and_limits_over_http(store_url: str) -> None:
    with httpx.Client(base_url=store_url, headers=SERVICE_HEADERS) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").status_code == 200
        schema = http.get("/schema/openapi.json").json()
        assert schema["components"]["schemas"]["Job"]["properties"]["id"]["pattern"]
        job_id = http.post("/job/", json={"name": "echo", "user_id": "limits"}).json()["id"]
        too_big = http.put(f"/job/{job_id}", json={"result": "x" * 5000})
        assert too_big.status_code == 413
        bad = http.post("/job/", content=b"{", headers={"content-type": "application/json"})
        assert bad.status_code == 400
        assert http.get("/job/not-an-id").status_code == 400
        assert http.delete(f"/jobs/{job_id}").json() == {"message": f"Job {job_id} deleted."}


async def test_racing_writers_over_http_exactly_one_wins(store_url: str) -> None:
    async with httpx.AsyncClient(base_url=store_url, timeout=30, headers=SERVICE_HEADERS) as http:
        for _ in range(15):
            created = await http.post("/job/", json={"name": "echo", "user_id": "racer"})
            job_id = created.json()["id"]
            await http.put(f"/job/{job_id}", json={"status": "running"})
            answers = await asyncio.gather(*(
                http.put(f"/job/{job_id}", json={"status": status})
                for status in ("succeeded", "cancelled", "failed", "cancelled")))
            winners = [a.json()["status"] for a in answers if a.status_code == 200]
            losers = [a.json()["current_status"] for a in answers if a.status_code == 409]
            assert len(winners) == 1 and len(losers) == 3, [a.text for a in answers]
            assert set(losers) == set(winners)
            assert (await http.get(f"/job/{job_id}")).json()["status"] == winners[0]


def test_racing_threads_exactly_one_wins(store_url: str) -> None:
    """Separate connections from separate threads, released together by a barrier."""
    targets = ["succeeded", "cancelled", "failed", "succeeded", "cancelled", "failed"]
    clients = [httpx.Client(base_url=store_url, timeout=30, headers=SERVICE_HEADERS)
               for _ in targets]
    try:
        with ThreadPoolExecutor(len(targets)) as pool:
            for _ in range(10):
                job_id = _new_running_job(clients[0], "thread-racer")
                barrier = threading.Barrier(len(targets))

                def move(index: int, job_id: str = job_id,
                         barrier: threading.Barrier = barrier) -> httpx.Response:
                    barrier.wait(timeout=30)
                    return clients[index].put(f"/job/{job_id}",
                                              json={"status": targets[index]})

                answers = list(pool.map(move, range(len(targets))))
                codes = sorted(answer.status_code for answer in answers)
                assert codes == [200] + [409] * (len(targets) - 1), [a.text for a in answers]
    finally:
        for client in clients:
            client.close()


def test_sigterm_stops_the_store_cleanly(mongo_url: str, log_dir: Path) -> None:
    proc, url = start_store(log_dir, mongo_url, "store_sigterm")
    try:
        assert httpx.get(f"{url}/readyz").status_code == 200
    finally:
        code = proc.stop()
    assert code == 0, proc.log_tail()
    assert "Application shutdown complete" in proc.log_tail(80)


def test_jobs_survive_a_restart_with_a_file_database(log_dir: Path, tmp_path: Path,
                                                     processes: list[ManagedProcess]) -> None:
    db_file = tmp_path / "db.sqlite"
    mongo, mongo_url = start_mongo(log_dir, db_file)
    processes.append(mongo)
    store, url = start_store(log_dir, mongo_url, "store_restart")
    processes.append(store)
    with httpx.Client(base_url=url, headers=SERVICE_HEADERS) as http:
        job_id = http.post("/job/", json={"name": "echo", "user_id": "keeper",
                                          "params": {"keep": True}}).json()["id"]
        before = http.put(f"/job/{job_id}", json={"status": "running", "progress": 40}).json()
    assert store.stop() == 0
    mongo.stop()

    mongo, mongo_url = start_mongo(log_dir, db_file)
    processes.append(mongo)
    store, url = start_store(log_dir, mongo_url, "store_restart")
    processes.append(store)
    with httpx.Client(base_url=url, headers=SERVICE_HEADERS) as http:
        assert http.get(f"/job/{job_id}").json() == before
        listed = http.get("/job/user/keeper").json()
        assert [job["id"] for job in listed["items"]] == [job_id]
        finished = http.put(f"/job/{job_id}", json={"status": "succeeded"})
        assert finished.status_code == 200


def test_database_outage_is_503_not_500(log_dir: Path,
                                        processes: list[ManagedProcess]) -> None:
    mongo, mongo_url = start_mongo(log_dir)
    processes.append(mongo)
    store, url = start_store(log_dir, mongo_url, "store_outage", MONGODB_TIMEOUT_MS="500")
    processes.append(store)
    missing = "0123456789abcdef01234567"
    with httpx.Client(base_url=url, timeout=30, headers=SERVICE_HEADERS) as http:
        assert http.get("/readyz").status_code == 200
        mongo.stop()
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 503
        for method, path, body in [("GET", f"/job/{missing}", None),
                                   ("POST", "/job/", {"name": "echo", "user_id": "u"}),
                                   ("PUT", f"/job/{missing}", {"progress": 1}),
                                   ("GET", "/job/user/u", None)]:
            response = http.request(method, path, json=body)
            assert response.status_code == 503, (method, path, response.text)
            assert "unavailable" in response.json()["detail"]

        port = int(mongo_url.rsplit(":", 1)[1])
        mongo, _ = start_mongo(log_dir, port=port)
        processes.append(mongo)
        store.wait_until(lambda: http.get("/readyz").status_code == 200, timeout=30)
        assert http.post("/job/", json={"name": "echo", "user_id": "u"}).status_code == 201


def test_store_without_a_database_exits_with_an_error(log_dir: Path) -> None:
    nowhere = f"mongodb://127.0.0.1:{free_port()}"
    port = free_port()
    proc = python_module(f"store-nodb-{port}", "backend.store", log_dir,
                         {"MONGODB_URL": nowhere, "MONGODB_TIMEOUT_MS": "300"},
                         "--port", str(port)).start()
    assert proc.proc is not None
    code = proc.proc.wait(timeout=60)
    assert code != 0
    assert "cannot start: MongoDB (MONGODB_URL) did not answer" in proc.log_tail(200)
