"""`make run`: the whole system on embedded defaults, from one launcher."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
import redis

from backend.local.embedded import answers
from tests.e2e.conftest import wait_for
from tests.e2e.local_run import launch, local_env
from tests.services import ManagedProcess, sign_in


def test_local_run_brings_everything_up_and_stops_cleanly(tmp_path, log_dir):
    env, api = local_env(tmp_path / "data", grace="5")
    ports = {"redis": urlsplit(env["REDIS_URL"]).port,
             "mongo": urlsplit(env["MONGODB_URL"]).port, "store": int(env["STORE_PORT"]),
             "api": int(env["API_PORT"]), "dash": int(env["DASHBOARD_PORT"])}
    launcher = launch(env, log_dir)
    try:
        # The first start made the admin, and printed its password this once.
        banner = launcher.log_path.read_text()
        found = re.search(r"Sign in as admin with the password (\S+)", banner)
        assert found, banner[-2000:]
        auth = {"Authorization": f"Bearer {sign_in(api, 'admin', found.group(1))}"}
        assert httpx.get(f"{api}/api/v1/jobs", timeout=10).status_code == 401  # not without
        # A submit and its result, over HTTP.
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
            [sys.executable, "-m", "backend", "users", "create", "carol", "--password-stdin"],
            input="carol-password-42\n", capture_output=True, text=True, timeout=60,
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
    assert code == 0, launcher.log_tail()
    assert took < float(env["SHUTDOWN_GRACE"]) + 15, f"stopping took {took:.0f} s"
    log = launcher.log_path.read_text()
    order = [log.index(f"stopping {name}") for name in ("workers", "dispatcher", "api", "store")]
    assert order == sorted(order), "stopped in the wrong order"
    assert "Traceback" not in log
    # Ctrl-C stopped everything it started, the embedded servers included.
    for name in ("redis", "mongo", "store", "api", "dash"):
        assert not answers("127.0.0.1", ports[name]), f"{name} still answers after Ctrl-C"

    # The next start finds the job finished, with its result: nothing failed on the way out.
    again = launch(env, log_dir, "local-run-again")
    try:
        assert "Sign in as admin with the password" not in again.log_path.read_text()  # once
        job = httpx.get(f"{api}/api/v1/jobs/{running}", timeout=10, headers=auth).json()
        assert (job["status"], job["attempts"], job["progress"]) == ("succeeded", 1, 100), job
    finally:
        again.signal(signal.SIGINT)
        assert again.proc is not None
        again.proc.wait(60)


# --- Ctrl-C: says what it waits for; a second one stops at once; exit 0 --------------------

def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_second_ctrl_c_stops_at_once_and_the_job_runs_again_at_the_next_start(tmp_path,
                                                                              log_dir):
    # A grace far longer than the job: only the second Ctrl-C can cut the job short.
    env, api = local_env(tmp_path / "data", grace="120")
    launcher = launch(env, log_dir, "local-run-twice")
    assert launcher.proc is not None
    try:
        password = re.search(r"Sign in as admin with the password (\S+)",
                             launcher.log_path.read_text())
        assert password, launcher.log_tail()
        auth = {"Authorization": f"Bearer {sign_in(api, 'admin', password.group(1))}"}
        job_id = httpx.post(f"{api}/api/v1/job_executor/async", timeout=10, headers=auth,
                            json={"job_name": "simulate", "estimated_time": 12}).json()["job_id"]
        wait_for(lambda: httpx.get(f"{api}/api/v1/jobs/{job_id}", headers=auth,
                                   timeout=10).json()["status"] == "running", 30, "the job to run")
        children = _descendants(launcher.pid)
        assert len(children) >= 7  # Redis, nx-27017, the five processes (and their helpers)

        launcher.signal(signal.SIGINT)
        # At once: what it waits for, and how not to.
        waiting = (f"stopping: waiting up to 120 s for 1 running job to finish ({job_id}) "
                   "(Ctrl-C again to stop now)")
        launcher.wait_until(lambda: waiting in launcher.log_path.read_text(), 5)
        # ...and again every few seconds while it waits.
        launcher.wait_until(lambda: re.search(
            rf"stopping: still waiting for 1 running job \(\d+ s left\) \({job_id}\)",
            launcher.log_path.read_text()), 10)
        launcher.signal(signal.SIGINT)
        # The job would take seconds more and the grace is 120 s: the launcher is done first.
        code = launcher.proc.wait(30)
    finally:
        if launcher.alive():
            launcher.stop(60)
    log = launcher.log_path.read_text()
    assert code == 0, launcher.log_tail()
    assert "SIGINT received again: stopping now" in log
    assert "the workers hand their running jobs back" in log
    assert log.rstrip().endswith("taskbroker stopped"), launcher.log_tail()
    assert "killing it" not in log and "Traceback" not in log, launcher.log_tail()
    leftover = [proc for proc in children if not _gone(proc)]
    assert not leftover, leftover
    for port_of in ("REDIS_URL", "MONGODB_URL"):
        assert not answers("127.0.0.1", int(env[port_of].rsplit(":", 1)[1].split("/")[0]))

    # Nothing accepted is lost: the job was handed back, and the next start runs it again,
    # to the end, as its second attempt.
    again = launch(env, log_dir, "local-run-twice-again")
    try:
        def finished():
            job = httpx.get(f"{api}/api/v1/jobs/{job_id}", timeout=10, headers=auth).json()
            return job if job["status"] in ("succeeded", "failed") else None

        job = wait_for(finished, 60, "the handed-back job to finish", interval=0.3)
        assert (job["status"], job["attempts"], job["progress"]) == ("succeeded", 2, 100), job
        assert job["result"]["slept"] == 12
    finally:
        again.signal(signal.SIGINT)
        assert again.proc is not None
        assert again.proc.wait(60) == 0, again.log_tail()


def test_ctrl_c_with_no_job_running_stops_and_exits_0(tmp_path, log_dir):
    env, _ = local_env(tmp_path / "data", grace="30")
    launcher = launch(env, log_dir, "local-run-idle")
    assert launcher.proc is not None
    children = _descendants(launcher.pid)
    try:
        launcher.signal(signal.SIGINT)
        code = launcher.proc.wait(60)
    finally:
        if launcher.alive():
            launcher.stop(60)
    log = launcher.log_path.read_text()
    assert code == 0, launcher.log_tail()
    assert "stopping: no job is running" in log
    order = [log.index(f"stopping {name}") for name in ("workers", "dispatcher", "api", "store")]
    assert order == sorted(order), "stopped in the wrong order"
    assert log.rstrip().endswith("taskbroker stopped"), launcher.log_tail()
    assert "killing it" not in log and "Traceback" not in log, launcher.log_tail()
    assert not [proc for proc in children if not _gone(proc)]


# --- each process only its secrets; DATA_DIR for its owner only (F8, F12) ------------------

# A value the operator exported in the launcher's shell: it must reach the kernel only.
SHELL_AUTH_SECRET = "shell-exported-auth-secret-0123456789abcdef"


def _environ(pid: int) -> dict[str, str]:
    raw = open(f"/proc/{pid}/environ", "rb").read()
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def _processes(launcher: ManagedProcess, module: str) -> list[psutil.Process]:
    """The launcher's descendants running ``python -m <module>`` (and their children)."""
    found = []
    for proc in psutil.Process(launcher.pid).children(recursive=True):
        try:
            cmdline = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "-m" in cmdline and cmdline[cmdline.index("-m") + 1] == module:
            found.append(proc)
            found += proc.children(recursive=True)
    return found


def _mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_local_run_gives_each_process_its_secrets_and_keeps_data_dir_private(log_dir):
    # DATA_DIR where another local user could reach it (pytest's own tmp is 0700 already).
    parent = Path(tempfile.mkdtemp(prefix="taskbroker-f12-", dir="/tmp"))
    parent.chmod(0o755)
    data = parent / "data"
    # An older run's leftovers, made with a loose umask: fixed at start.
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "mongo.log").write_text("old log\n")
    (data / "mongo.log").chmod(0o644)
    env, _ = local_env(data, grace="5")
    env["AUTH_SECRET"] = SHELL_AUTH_SECRET
    launcher = launch(env, log_dir, "local-run-private")
    try:
        secrets = json.loads((data / "secrets.json").read_text())
        withheld = {"AUTH_SECRET": SHELL_AUTH_SECRET,
                    "DATA_SERVICE_TOKEN": secrets["data_service_token"],
                    "WEBHOOK_SECRET": secrets["webhook_secret"],
                    "DASHBOARD_PASSWORD": secrets["dashboard_password"]}
        # The kernel holds what it signs with (so the reads below read the right thing).
        [api, *_] = _processes(launcher, "backend.api")
        assert _environ(api.pid)["AUTH_SECRET"] == SHELL_AUTH_SECRET
        assert _environ(api.pid)["DATA_SERVICE_TOKEN"] == secrets["data_service_token"]
        # A worker (task code runs there) and rq-dashboard: Redis, and none of the keys that
        # mint a session, call the data service or sign webhooks. Every process of theirs.
        workers = _processes(launcher, "backend.workers")
        dashboard = _processes(launcher, "backend.dashboard")
        assert len(workers) >= 2 and dashboard  # the executor and its worker process
        for proc in workers + dashboard:
            environ = _environ(proc.pid)
            raw = open(f"/proc/{proc.pid}/environ", "rb").read().decode(errors="replace")
            assert secrets["redis_password"] in environ["REDIS_URL"], proc.cmdline()
            for name, value in withheld.items():
                if proc in dashboard and name == "DASHBOARD_PASSWORD":
                    assert environ[name] == value
                    continue
                assert value not in raw, f"{name} reached {proc.cmdline()}"
                assert environ.get(name, "") == "", (name, proc.cmdline())
        # The data service alone has the database's address; the dispatcher no session key.
        [store, *_] = _processes(launcher, "backend.store")
        assert _environ(store.pid)["MONGODB_URL"] == env["MONGODB_URL"]
        for proc in workers + dashboard + _processes(launcher, "backend.dispatcher"):
            assert _environ(proc.pid).get("MONGODB_URL", "") == "", proc.cmdline()
            assert SHELL_AUTH_SECRET not in open(f"/proc/{proc.pid}/environ").read()

        # DATA_DIR and everything in it: its owner's only, the database and the AOF too.
        assert _mode(data) == 0o700
        kept = [data / "secrets.json", data / "mongo.log", data / "redis.log",
                *[p for p in (data / "mongo").rglob("*") if p.is_file()],
                *[p for p in (data / "redis").rglob("*") if p.is_file()]]
        assert any(p.suffix == ".db" for p in kept), kept
        assert any("appendonly" in p.name for p in kept), kept
        for path in kept:
            assert _mode(path) == 0o600, path
        for path in [data / "mongo", data / "redis",
                     *[p for p in data.rglob("*") if p.is_dir()]]:
            assert _mode(path) == 0o700, path
        if os.geteuid() == 0:
            # The attack itself, as another local user: read the job database's file and the
            # kept secrets. Both must be refused.
            database = next(p for p in kept if p.suffix == ".db")
            for target in (database, data / "secrets.json", data / "redis.log"):
                attempt = subprocess.run(
                    ["/usr/bin/python3", "-c", f"print(open({str(target)!r}, 'rb').read()[:9])"],
                    user=65534, group=65534, extra_groups=[], cwd="/", capture_output=True,
                    text=True, timeout=30)
                assert attempt.returncode != 0 and "PermissionError" in attempt.stderr, \
                    (target, attempt.stdout)
    finally:
        launcher.signal(signal.SIGINT)
        assert launcher.proc is not None
        launcher.proc.wait(60)
        shutil.rmtree(parent, ignore_errors=True)
