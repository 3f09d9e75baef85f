"""rq-dashboard end to end: a signed-in user's failing job carries HTML meant to run script
in an operator's browser; the real dashboard process serves it, and Debian's Chromium
(driven by frontend/e2e/dashboard.mjs through playwright-core) shows it as text, runs none
of it, and works under the dashboard's Content-Security-Policy.

Needs what `make frontend-setup chromium` provides; a missing piece fails with the command
that provides it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from backend.local.embedded import free_port
from tests.e2e.conftest import System, wait_for
from tests.services import ROOT, TEST_SECRETS, create_user, sign_in

FRONTEND = ROOT / "frontend"
SCRIPT = FRONTEND / "e2e" / "dashboard.mjs"
CHROMIUM = "/usr/bin/chromium"
USER, OPERATOR = "dash-user", "operator"
PASSWORD = TEST_SECRETS["DASHBOARD_PASSWORD"]
# An inline handler, a script element and a dialog: any of them running is the attack.
PAYLOAD = ('<img src=x onerror="window.__xss=1;alert(1)">'
           '<script>window.__xss_script=1</script><b>bold?</b>')

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@dataclass
class FailedJob:
    url: str           # the dashboard
    job_id: str
    queue: str


@pytest.fixture(scope="module")
def failed_job(system: System) -> Iterator[FailedJob]:
    """The dashboard as a real process, and a job a plain user made fail with PAYLOAD."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    system.start("dashboard", "backend.dashboard", "--port", str(port),
                 env={"DASHBOARD_USERNAME": OPERATOR}).wait_until(
        lambda: httpx.get(url + "/", auth=(OPERATOR, PASSWORD), timeout=2).status_code == 200,
        60)

    create_user(system.store_url, USER)
    token = sign_in(system.api_url, USER)
    answer = httpx.post(f"{system.api_url}/api/v1/job_executor/async", timeout=15,
                        headers={"Authorization": f"Bearer {token}"},
                        json={"job_name": "fail", "estimated_time": 1,
                              "params": {"permanent": True, "message": PAYLOAD}})
    assert answer.status_code == 200, answer.text
    job_id = answer.json()["job_id"]
    system.wait_status(job_id, "failed")

    def in_failed_registry() -> dict | None:
        # The store hears of the failure before RQ files the job under failed.
        job = httpx.get(f"{url}/0/data/job/{job_id}.json", auth=(OPERATOR, PASSWORD),
                        timeout=5)
        return job.json() if job.status_code == 200 and job.json()["exc_info"] else None

    job = wait_for(in_failed_registry, 60, "RQ to file the job as failed")
    yield FailedJob(url=url, job_id=job_id, queue=job["origin"])
    system.dashboard.stop()


def test_job_json_is_html_escaped(failed_job: FailedJob) -> None:
    # What the job page puts into innerHTML: the payload must come as text, not markup.
    job = httpx.get(f"{failed_job.url}/0/data/job/{failed_job.job_id}.json",
                    auth=(OPERATOR, PASSWORD), timeout=5)
    assert job.status_code == 200, job.text
    info = job.json()
    assert "&lt;img src=x onerror=&quot;window.__xss=1;alert(1)&quot;&gt;" in info["exc_info"]
    assert "&lt;script&gt;" in info["exc_info"]
    raw = job.text
    assert "<img" not in raw and "<script" not in raw and "<b>" not in raw, raw
    assert info["status"] == "failed"
    assert "content-security-policy" in job.headers
    # The failed list serves the same traceback, escaped the same way.
    listed = httpx.get(f"{failed_job.url}/0/data/jobs/{failed_job.queue}/failed/8/asc/1.json",
                       auth=(OPERATOR, PASSWORD), timeout=5)
    assert listed.status_code == 200, listed.text
    [row] = [j for j in listed.json()["jobs"] if j["id"] == failed_job.job_id]
    assert "&lt;img src=x" in row["exc_info"] and "<img" not in listed.text


def test_browser_shows_the_payload_as_text_and_runs_none_of_it(failed_job: FailedJob) -> None:
    assert (FRONTEND / "node_modules" / "playwright-core").is_dir(), (
        "frontend/node_modules is missing: run `make frontend-setup`")
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: run `make chromium`"
    node = shutil.which("node")
    assert node, "node is not on PATH"
    env = {**os.environ, "DASHBOARD_URL": failed_job.url, "DASHBOARD_USERNAME": OPERATOR,
           "DASHBOARD_PASSWORD": PASSWORD, "JOB_ID": failed_job.job_id,
           "QUEUE": failed_job.queue, "PAYLOAD": PAYLOAD, "CHROMIUM_PATH": CHROMIUM}
    run = subprocess.run([node, str(SCRIPT)], cwd=FRONTEND, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    output = f"{run.stdout}\n{run.stderr}"
    print(output)
    assert run.returncode == 0, f"the browser checks failed:\n{output}"
    assert "passed: " in run.stdout and "job page shows the payload as text" in run.stdout
