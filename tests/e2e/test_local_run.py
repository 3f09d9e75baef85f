"""The README's main command: the whole system on embedded defaults, from one launcher."""

from __future__ import annotations

import signal
import sys
import time

import httpx
import redis

from backend.embedded import answers, free_port
from tests.e2e.conftest import wait_for
from tests.services import ManagedProcess


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
        # The curl submit-and-poll of the README, over HTTP.
        answer = httpx.post(f"{api}/api/v1/job_executor/async",
                            json={"job_name": "wordcount", "user_id": "readme",
                                  "estimated_time": 1, "params": {"text": "to be or not to be"}},
                            timeout=10).json()
        assert answer["status"] == 200
        job_id = answer["job_id"]

        def finished():
            job = httpx.get(f"{api}/api/v1/jobs/{job_id}", timeout=10).json()
            return job if job["status"] in ("succeeded", "failed") else None

        job = wait_for(finished, 60, "the job to finish", interval=0.3)
        assert job["status"] == "succeeded", job
        assert job["result"]["words"] == 6

        dashboard = httpx.get(f"http://127.0.0.1:{ports['dash']}/", timeout=10)
        assert dashboard.status_code == 200 and "RQ" in dashboard.text
        # The embedded servers keep their data under DATA_DIR.
        assert (tmp_path / "data" / "mongo").is_dir()
        assert redis.Redis.from_url(env["REDIS_URL"]).ping()
        # A job still running at Ctrl-C: the workers stop first and let it finish.
        running = httpx.post(f"{api}/api/v1/job_executor/async", timeout=10, json={
            "job_name": "simulate", "user_id": "readme", "estimated_time": 3}).json()["job_id"]
        wait_for(lambda: httpx.get(f"{api}/api/v1/jobs/{running}").json()["status"]
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
        job = httpx.get(f"{api}/api/v1/jobs/{running}", timeout=10).json()
        assert (job["status"], job["attempts"], job["progress"]) == ("succeeded", 1, 100), job
    finally:
        again.signal(signal.SIGINT)
        assert again.proc is not None
        again.proc.wait(60)
