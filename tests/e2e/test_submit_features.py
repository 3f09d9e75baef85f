"""Idempotent submits, batch submits, re-runs and `taskbroker submit-many`, through the
whole system as real processes, on the Redis Stream queue and on SQS."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import System, _start_system, wait_for
from tests.services import create_user, sign_in

pytestmark = pytest.mark.e2e

IDEMPOTENCY_TTL = 3


@pytest.fixture(scope="module", params=["redis", "sqs"])
def system(request: pytest.FixtureRequest, log_dir: Path) -> Iterator[System]:
    backend = request.param
    running = _start_system(backend, log_dir / f"submit-features-{backend}",
                            {"IDEMPOTENCY_TTL": str(IDEMPOTENCY_TTL)})
    yield running
    running.stop_all()


def new_user() -> str:
    return f"feat-{uuid.uuid4().hex[:8]}"


def listed(system: System, user: str) -> dict[str, Any]:
    answer = system.http.get(f"{system.api_url}/api/v1/jobs",
                             params={"user_id": user, "limit": 100})
    assert answer.status_code == 200, answer.text
    return answer.json()


def cli(system: System, *args: str, stdin: str | None = None,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "backend", "--api-url", system.api_url, *args],
                          capture_output=True, text=True, timeout=120, input=stdin,
                          env={**system.env, "COLUMNS": "200", "NO_COLOR": "1",
                               "TASKBROKER_TOKEN": system.token})


def test_racing_submits_with_one_idempotency_key_make_one_job(system: System):
    user = new_user()
    body = {"job_name": "echo", "user_id": user, "estimated_time": 1, "params": {"n": 1}}
    url = f"{system.api_url}/api/v1/job_executor/async"
    key = {"Idempotency-Key": f"nightly-import-{uuid.uuid4().hex}"}

    def post(_: int) -> httpx.Response:
        return system.http.post(url, json=body, headers=key)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert {answer.status_code for answer in answers} == {200}, [a.text for a in answers]
    [job_id] = {answer.json()["job_id"] for answer in answers}
    assert system.wait_final(job_id)["result"] == {"n": 1}
    assert listed(system, user)["total"] == 1

    other = system.http.post(url, json={**body, "params": {"n": 2}}, headers=key)
    assert other.status_code == 422 and "different request" in other.json()["detail"]

    time.sleep(IDEMPOTENCY_TTL + 0.5)  # the key has expired: the same request is new again
    later = system.http.post(url, json=body, headers=key)
    assert later.status_code == 200 and later.json()["job_id"] != job_id
    assert listed(system, user)["total"] == 2


def test_a_batch_of_100_with_3_bad_items_runs_97_jobs(system: System):
    user = new_user()
    jobs: list[Any] = [{"job_name": "echo", "user_id": user, "estimated_time": 1,
                        "params": {"n": n}} for n in range(100)]
    jobs[10]["job_name"] = "no-such-task"
    jobs[50]["params"] = "not an object"
    jobs[99]["executor"] = "gpu"
    url = f"{system.api_url}/api/v1/jobs/batch"
    answer = system.http.post(url, json={"jobs": jobs})
    assert answer.status_code == 207, answer.text
    body = answer.json()
    assert (body["accepted"], body["refused"]) == (97, 3)
    errors = {r["index"]: r["status"] for r in body["results"] if "job_id" not in r}
    assert errors == {10: 422, 50: 400, 99: 422}
    ids = {r["index"]: r["job_id"] for r in body["results"] if "job_id" in r}
    for index, job_id in ids.items():
        job = system.wait_final(job_id, 120)
        assert job["status"] == "succeeded" and job["result"] == {"n": index}, job
    assert listed(system, user)["total"] == 97

    good = system.http.post(url, params={"executor": "priority"}, json={"jobs": [
        {"job_name": "wordcount", "estimated_time": 1, "user_id": user,
         "params": {"text": "a b"}}] * 3})
    assert good.status_code == 200, good.text
    for result in good.json()["results"]:
        job = system.wait_final(result["job_id"])
        assert (job["status"], job["executor"], job["result"]["words"]) == (
            "succeeded", "priority", 2)

    too_many = system.http.post(url, json={"jobs": [jobs[0]] * 101})
    assert too_many.status_code == 413 and "1 to 100" in too_many.json()["detail"]
    assert listed(system, user)["total"] == 100


def test_rerun_of_a_failed_job_succeeds_once_the_limit_allows(system: System):
    user = new_user()
    # It succeeds on its 4th attempt; the workers give a job 3 (MAX_ATTEMPTS).
    failed_id = system.submit("fail", {"succeed_on_attempt": 4}, user_id=user)
    failed = system.wait_final(failed_id)
    assert (failed["status"], failed["attempts"]) == ("failed", 3)

    system.workers.stop()
    system.start_workers(MAX_ATTEMPTS="4")  # the operator raises the limit, then re-runs
    try:
        run = cli(system, "rerun", failed_id, "--watch")
        assert run.returncode == 0, run.stdout + run.stderr
        new_id = run.stdout.splitlines()[0].strip()
        job = system.job(new_id)
        assert (job["status"], job["rerun_of"], job["attempts"], job["result"]) == (
            "succeeded", failed_id, 4, {"attempt": 4})
        assert (job["name"], job["params"], job["user_id"]) == (
            "fail", {"succeed_on_attempt": 4}, user)
    finally:
        system.workers.stop()
        system.start_workers()

    running_id = system.submit("simulate", {"duration": 30}, user_id=user, estimated_time=30)
    system.wait_status(running_id, "running")
    refused = system.http.post(f"{system.api_url}/api/v1/jobs/{running_id}/rerun")
    assert refused.status_code == 409 and refused.json()["current_status"] == "running"
    assert system.cancel(running_id).status_code == 200

    stranger = new_user()
    create_user(system.store_url, stranger)
    theirs = httpx.post(f"{system.api_url}/api/v1/jobs/{failed_id}/rerun", timeout=30,
                        headers={"Authorization": f"Bearer {sign_in(system.api_url, stranger)}"})
    assert theirs.status_code == 404


def test_submit_many_sends_a_file_in_batches_and_reports_each_line(system: System,
                                                                    tmp_path: Path):
    user = new_user()
    lines = [json.dumps({"job_name": "echo", "user_id": user, "estimated_time": 1,
                         "params": {"line": n}}) for n in range(1, 151)]
    lines[4] = "{not json"
    lines[119] = json.dumps({"job_name": "no-such-task", "user_id": user, "estimated_time": 1})
    source = tmp_path / "jobs.jsonl"
    source.write_text("\n".join(lines) + "\n\n")
    run = cli(system, "submit-many", str(source))
    assert run.returncode == 2, run.stdout + run.stderr
    printed = run.stdout.splitlines()
    assert len(printed) == 150
    assert any(line.startswith("line 5: not sent: not JSON") for line in printed)
    assert any(line.startswith("line 120: refused (422)") and "echo" in line
               for line in printed)
    ids = {int(line.split(":")[0].split()[1]): line.split(": ")[1] for line in printed
           if len(line.split(": ")[1]) == 24}
    assert len(ids) == 148
    assert "2 of 150 jobs were not accepted" in run.stderr
    wait_for(lambda: listed(system, user)["total"] == 148, 30, "148 jobs listed")
    for line_number in (1, 100, 150):
        job = system.wait_final(ids[line_number])
        assert job["result"] == {"line": line_number}

    good = cli(system, "submit-many", "-", "-e", "priority", stdin="\n".join(
        json.dumps({"job_name": "echo", "user_id": user, "estimated_time": 1}) for _ in range(3)))
    assert good.returncode == 0, good.stdout + good.stderr
    new_ids = [line.split(": ")[1] for line in good.stdout.splitlines()]
    assert len(new_ids) == 3
    assert {system.wait_final(job_id)["executor"] for job_id in new_ids} == {"priority"}

