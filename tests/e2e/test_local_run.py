"""The README's main command: the whole system on embedded defaults, from one launcher."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
import redis

from backend.embedded import answers, free_port
from tests.e2e.conftest import wait_for
from tests.services import ManagedProcess, sign_in


def _launch(env: dict[str, str], log_dir, name: str = "local-run") -> ManagedProcess:
    launcher = ManagedProcess(name, [sys.executable, "-m", "backend.local"], log_dir,
                              env=env).start()
    launcher.wait_until(lambda: "taskbroker is up" in launcher.log_path.read_text(), 120)
    return launcher


def test_local_run_brings_everything_up_and_stops_cleanly(tmp_path, log_dir):
    ports = {name: free_port() for name in ("redis", "mongo", "store", "api", "dash")}
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "MONGODB_URL": f"mongodb://127.0.0.1:{ports['mongo']}",
        "STORE_PORT": str(ports["store"]),
        "DATA_SERVICE_URL": f"http://127.0.0.1:{ports['store']}",
        "API_PORT": str(ports["api"]),
        "DASHBOARD_PORT": str(ports["dash"]),
        "DATA_DIR": str(tmp_path / "data"),
        "QUEUE_BACKEND": "redis",
        "WORKER_COUNT": "1",
        "SHUTDOWN_GRACE": "5",
    }
    launcher = _launch(env, log_dir)
    api = f"http://127.0.0.1:{ports['api']}"
    try:
        # The first start made the admin, and printed its password this once.
        banner = launcher.log_path.read_text()
        found = re.search(r"Sign in as admin with the password (\S+)", banner)
        assert found, banner[-2000:]
        auth = {"Authorization": f"Bearer {sign_in(api, 'admin', found.group(1))}"}
        assert httpx.get(f"{api}/api/v1/jobs", timeout=10).status_code == 401  # not without
        # The curl submit-and-poll of the README, over HTTP.
        answer = httpx.post(f"{api}/api/v1/job_executor/async", headers=auth,
                            json={"job_name": "wordcount", "estimated_time": 1,
                                  "params": {"text": "to be or not to be"}},
                            timeout=10).json()
        assert answer["status"] == 200
        job_id = answer["job_id"]

        def finished():
            job = httpx.get(f"{api}/api/v1/jobs/{job_id}", timeout=10, headers=auth).json()
            return job if job["status"] in ("succeeded", "failed") else None

        job = wait_for(finished, 60, "the job to finish", interval=0.3)
        assert job["status"] == "succeeded", job
        assert job["result"]["words"] == 6

        # Secrets were made at the first start, kept for the owner's eyes only.
        kept = tmp_path / "data" / "secrets.json"
        assert kept.stat().st_mode & 0o777 == 0o600
        secrets = json.loads(kept.read_text())
        dashboard_url = f"http://127.0.0.1:{ports['dash']}/"
        assert httpx.get(dashboard_url, timeout=10).status_code == 401
        dashboard = httpx.get(dashboard_url, timeout=10,
                              auth=("admin", secrets["dashboard_password"]))
        assert dashboard.status_code == 200 and "RQ" in dashboard.text
        # Redis asks for its password: nobody else can make the workers run anything.
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(env["REDIS_URL"]).ping()
        with_password = f"redis://:{secrets['redis_password']}@127.0.0.1:{ports['redis']}/0"
        assert redis.Redis.from_url(with_password).ping()
        # The data service only answers the processes that hold its token.
        store = f"http://127.0.0.1:{ports['store']}"
        assert httpx.get(f"{store}/users", timeout=10).status_code == 401
        # ...and the operator's `taskbroker users` beside the local run finds its token.
        made = subprocess.run(
            [sys.executable, "-m", "backend", "users", "create", "carol", "--password",
             "carol-password-42"], capture_output=True, text=True, timeout=60,
            env={**os.environ, **env, "DATA_SERVICE_TOKEN": ""})
        assert made.returncode == 0, made.stderr
        assert sign_in(api, "carol", "carol-password-42")
        # The embedded servers keep their data under DATA_DIR.
        assert (tmp_path / "data" / "mongo").is_dir()
        # A job still running at Ctrl-C: the workers stop first and let it finish.
        running = httpx.post(f"{api}/api/v1/job_executor/async", timeout=10, headers=auth,
                             json={"job_name": "simulate", "estimated_time": 3}).json()["job_id"]
        wait_for(lambda: httpx.get(f"{api}/api/v1/jobs/{running}", headers=auth).json()["status"]
                 == "running", 30, "the job to run")
    finally:
        launcher.signal(signal.SIGINT)
        assert launcher.proc is not None
        stopping = time.monotonic()
        code = launcher.proc.wait(60)
    took = time.monotonic() - stopping
    assert code in (0, 130), launcher.log_tail()
    assert took < float(env["SHUTDOWN_GRACE"]) + 15, f"stopping took {took:.0f} s"
    log = launcher.log_path.read_text()
    order = [log.index(f"stopping {name}") for name in ("workers", "dispatcher", "api", "store")]
    assert order == sorted(order), "stopped in the wrong order"
    assert "Traceback" not in log
    # Ctrl-C stopped everything it started, the embedded servers included.
    for name in ("redis", "mongo", "store", "api", "dash"):
        assert not answers("127.0.0.1", ports[name]), f"{name} still answers after Ctrl-C"

    # The next start finds the job finished, with its result: nothing failed on the way out.
    again = _launch(env, log_dir, "local-run-again")
    try:
        assert "Sign in as admin with the password" not in again.log_path.read_text()  # once
        job = httpx.get(f"{api}/api/v1/jobs/{running}", timeout=10, headers=auth).json()
        assert (job["status"], job["attempts"], job["progress"]) == ("succeeded", 1, 100), job
    finally:
        again.signal(signal.SIGINT)
        assert again.proc is not None
        again.proc.wait(60)
