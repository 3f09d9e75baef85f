"""Retention: the data service deletes finished jobs older than JOB_RETENTION_DAYS, in
batches, and never an unfinished or a recent one."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from bson import ObjectId

from backend.store import retention
from backend.store.documents import collection
from tests.integration.store.test_process import start_store
from tests.services import SERVICE_HEADERS


def _finish(http: httpx.Client, job_id: str, status: str, days_ago: float) -> None:
    at = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    answer = http.post("/reports", json={"reports": [
        {"job_id": job_id, "attempt": 1, "at": at, "status": "running"},
        {"job_id": job_id, "attempt": 1, "at": at, "status": status}]})
    assert answer.status_code == 200 and answer.json()["applied"] == 1, answer.text


def _record(http: httpx.Client, user: str, status: str = "queued", **fields: object) -> str:
    job_id = str(ObjectId())
    answer = http.post("/jobs/bulk", json={"jobs": [
        {"id": job_id, "name": "echo", "user_id": user, "status": status, **fields}]})
    assert answer.status_code == 200, answer.text
    return job_id


def _exists(http: httpx.Client, job_id: str) -> bool:
    return http.get(f"/job/{job_id}").status_code == 200


def test_old_finished_jobs_are_deleted_unfinished_and_recent_ones_kept(
        mongo_url: str, log_dir: Path) -> None:
    proc, url = start_store(log_dir, mongo_url, "retention_days", JOB_RETENTION_DAYS="30",
                            RETENTION_SWEEP_INTERVAL="0.5")
    try:
        with httpx.Client(base_url=url, headers=SERVICE_HEADERS, timeout=10) as http:
            old = [_record(http, "ret") for _ in range(2)]
            recent, cancelled = _record(http, "ret"), _record(http, "ret")
            queued, running = _record(http, "ret"), _record(http, "ret")
            scheduled = _record(http, "ret", "scheduled",
                                run_at=(datetime.now(UTC) + timedelta(days=29)).isoformat())
            _finish(http, old[0], "succeeded", days_ago=31)
            _finish(http, old[1], "failed", days_ago=45)
            _finish(http, recent, "succeeded", days_ago=29)
            assert http.put(f"/job/{cancelled}", json={"status": "cancelled"}).is_success
            # Started 40 days ago, still running: unfinished, so kept however old.
            assert http.post("/reports", json={"reports": [{
                "job_id": running, "attempt": 1, "status": "running",
                "at": (datetime.now(UTC) - timedelta(days=40)).isoformat()}]}).is_success
            deadline = time.monotonic() + 30
            while any(_exists(http, job_id) for job_id in old):
                assert time.monotonic() < deadline, proc.log_tail()
                time.sleep(0.2)
            for job_id in (recent, cancelled, queued, running, scheduled):
                assert _exists(http, job_id), job_id
        counts = re.findall(r"retention sweep: deleted (\d+) finished jobs older than 30 days",
                            proc.log_path.read_text())
        assert sum(map(int, counts)) == 2
    finally:
        assert proc.stop() == 0, proc.log_tail()


def test_a_fraction_of_a_day_works_and_zero_keeps_jobs_forever(
        mongo_url: str, log_dir: Path) -> None:
    # 0.00003 days is 2.6 s: a job finished now is gone a few seconds later.
    fast, fast_url = start_store(log_dir, mongo_url, "retention_fast",
                                 JOB_RETENTION_DAYS="0.00003", RETENTION_SWEEP_INTERVAL="0.3")
    never, never_url = start_store(log_dir, mongo_url, "retention_never",
                                   JOB_RETENTION_DAYS="0", RETENTION_SWEEP_INTERVAL="0.3")
    try:
        with httpx.Client(base_url=fast_url, headers=SERVICE_HEADERS, timeout=10) as http:
            done, waiting = _record(http, "fast"), _record(http, "fast")
            _finish(http, done, "succeeded", days_ago=0)
            assert _exists(http, done)
            deadline = time.monotonic() + 30
            while _exists(http, done):
                assert time.monotonic() < deadline, fast.log_tail()
                time.sleep(0.2)
            assert _exists(http, waiting)
        with httpx.Client(base_url=never_url, headers=SERVICE_HEADERS, timeout=10) as http:
            kept = _record(http, "never")
            _finish(http, kept, "failed", days_ago=3650)
            time.sleep(1.5)
            assert _exists(http, kept)
        assert "kept forever (JOB_RETENTION_DAYS=0)" in never.log_path.read_text()
    finally:
        assert fast.stop() == 0 and never.stop() == 0


async def test_a_sweep_deletes_in_batches_until_none_is_left(
        store: httpx.AsyncClient, user: str) -> None:
    ids = [str(ObjectId()) for _ in range(5)]
    assert (await store.post("/jobs/bulk", json={"jobs": [
        {"id": job_id, "name": "echo", "user_id": user, "status": "queued"}
        for job_id in ids]})).status_code == 200
    at = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    await store.post("/reports", json={"reports": [
        {"job_id": job_id, "attempt": 1, "at": at, "status": status}
        for job_id in ids for status in ("running", "succeeded")]})
    deleted = await retention.sweep_once(collection(), 365, batch=2, pause=0)
    assert deleted == 5
    page = (await store.get("/jobs", params={"user_id": user})).json()
    assert page["total"] == 0
    assert await retention.sweep_once(collection(), 365) == 0
