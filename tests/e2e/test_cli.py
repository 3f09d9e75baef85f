"""The command-line client against the running system."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import System
from tests.services import TEST_PASSWORD, create_user, sign_in

pytestmark = pytest.mark.e2e


def cli(system: System, *args: str, timeout: float = 90,
        columns: int = 200) -> subprocess.CompletedProcess[str]:
    # Global options come first, as the README shows them. Standard output is a pipe, as in
    # `taskbroker list | grep ...`.
    return subprocess.run([sys.executable, "-m", "backend", "--api-url", system.api_url,
                           *args], capture_output=True, text=True, timeout=timeout,
                          env={**system.env, "COLUMNS": str(columns), "NO_COLOR": "1",
                               "TASKBROKER_TOKEN": system.token})


def test_submit_and_watch_prints_the_result(system: System):
    user = f"cli-{uuid.uuid4().hex[:6]}"
    run = cli(system, "submit", "wordcount", "-u", user, "-t", "1",
              "-p", "text=the cat and the hat", "--watch")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    job_id = lines[0].strip()
    assert len(job_id) == 24
    assert system.job(job_id)["status"] == "succeeded"
    result = json.loads(run.stdout[run.stdout.index("{"):])
    assert result["words"] == 5 and result["top"][0] == ["the", 2]

    listing = cli(system, "list", "-u", user)
    assert listing.returncode == 0, listing.stderr
    assert job_id in listing.stdout and "succeeded" in listing.stdout


def test_watch_of_a_failing_job_exits_non_zero_with_the_error(system: System):
    run = cli(system, "submit", "fail", "-u", "cli", "--params",
              '{"permanent": true, "message": "bad input file"}', "--watch")
    assert run.returncode == 1
    assert "failed" in run.stdout and "bad input file" in run.stdout


def test_bad_requests_are_explained(system: System):
    unknown = cli(system, "submit", "no-such-task", "-u", "cli")
    assert unknown.returncode == 2
    assert "422" in unknown.stderr and "echo" in unknown.stderr  # lists the valid tasks
    not_json = cli(system, "submit", "echo", "--params", "{not json")
    assert not_json.returncode == 2 and "--params" in not_json.stderr


def test_cancel_a_running_job(system: System):
    job_id = cli(system, "submit", "simulate", "-u", "cli", "-t", "60").stdout.strip()
    system.wait_status(job_id, "running", 60)
    run = cli(system, "cancel", job_id)
    assert run.returncode == 0, run.stderr
    assert "cancelled" in run.stdout
    assert system.wait_final(job_id)["status"] == "cancelled"
    again = cli(system, "cancel", job_id)
    assert again.returncode == 2 and "409" in again.stderr


def test_kernel_down_is_a_clear_error():
    run = subprocess.run([sys.executable, "-m", "backend", "--api-url", "http://127.0.0.1:9",
                          "tasks"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 3 and "cannot reach the kernel API" in run.stderr


def test_login_keeps_a_token_whoami_and_logout_revokes_it(system: System, tmp_path):
    user = f"cli-{uuid.uuid4().hex[:6]}"
    create_user(system.store_url, user)
    home = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}

    def run(*args: str, token: str = "",
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "backend", "--api-url", system.api_url,
                               *args], capture_output=True, text=True, timeout=60,
                              input=stdin,
                              env={**system.env, **home, "TASKBROKER_TOKEN": token,
                                   "COLUMNS": "200", "NO_COLOR": "1"})

    refused = run("whoami")
    assert refused.returncode == 4 and "taskbroker login" in refused.stderr
    # A script signs in without a terminal, the password never on the command line.
    assert run("login", "-u", user, "--password", TEST_PASSWORD).returncode == 2
    wrong = run("login", "-u", user, "--password-stdin", stdin="not it\n")
    assert wrong.returncode == 4 and "wrong user name or password" in wrong.stderr
    empty = run("login", "-u", user, "--password-stdin", stdin="")
    assert empty.returncode == 2 and "no password" in empty.stderr
    no_user = run("login", "--password-stdin", stdin=TEST_PASSWORD + "\n")
    assert no_user.returncode == 2 and "--user" in no_user.stderr
    signed_in = run("login", "-u", user, "--password-stdin", stdin=TEST_PASSWORD + "\n")
    assert signed_in.returncode == 0, signed_in.stderr
    kept = next((tmp_path / "config").rglob("credentials.json"))
    assert kept.stat().st_mode & 0o777 == 0o600  # only its owner reads the token
    assert run("whoami").stdout.startswith(f"{user} (user, by token)")
    job_id = run("submit", "echo", "-p", "x=1").stdout.strip()
    assert system.wait_final(job_id)["user_id"] == user
    # The listing shows whole ids (they are what `show` takes), even on a narrow terminal.
    narrow = subprocess.run([sys.executable, "-m", "backend", "--api-url", system.api_url,
                             "list"], capture_output=True, text=True, timeout=60,
                            env={**system.env, **home, "COLUMNS": "60", "NO_COLOR": "1"})
    assert job_id in narrow.stdout, narrow.stdout
    token = json.loads(kept.read_text())[system.api_url]["token"]
    assert run("logout").returncode == 0
    after = run("whoami", token=token)  # the kept token was revoked, not just forgotten
    assert after.returncode == 4


def test_an_operator_manages_users_with_the_data_service_token(system: System, tmp_path: Path):
    user = f"op-{uuid.uuid4().hex[:6]}"

    def users(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "backend", "users", *args],
                              capture_output=True, text=True, timeout=60, input=stdin,
                              env={**system.env, "COLUMNS": "200", "NO_COLOR": "1"})

    created = users("create", user, "--password-stdin", stdin=TEST_PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert user in users("list").stdout
    assert sign_in(system.api_url, user)
    assert users("disable", user).returncode == 0
    refused = httpx.post(f"{system.api_url}/api/v1/auth/token", json={
        "username": user, "password": TEST_PASSWORD, "name": "x"}, timeout=30)
    assert refused.status_code == 401
    assert users("enable", user).returncode == 0
    changed = users("set-password", user, "--password-stdin", stdin="another-one-42\n")
    assert changed.returncode == 0, changed.stderr
    assert sign_in(system.api_url, user, "another-one-42")
    no_token = subprocess.run([sys.executable, "-m", "backend", "users", "list"],
                              capture_output=True, text=True, timeout=60,
                              env={**system.env, "DATA_SERVICE_TOKEN": "",
                                   "DATA_DIR": str(tmp_path)})  # no local run's token here
    assert no_token.returncode == 2 and "DATA_SERVICE_TOKEN" in no_token.stderr


def test_submit_with_a_key_and_a_delay_makes_one_scheduled_job(system: System):
    user = f"cli-{uuid.uuid4().hex[:6]}"
    key = f"cli-{uuid.uuid4().hex}"
    # Long enough a delay that three CLI runs on a busy machine end before it starts.
    args = ("submit", "echo", "-u", user, "--delay", "15", "-k", key, "-p", "n=1")
    first, again = cli(system, *args), cli(system, *args)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    job_id = first.stdout.strip()
    assert again.stdout.strip() == job_id  # the key: the same job, not a second one
    other = cli(system, "submit", "echo", "-u", user, "-k", key, "-p", "n=2")
    assert other.returncode == 2 and "Idempotency-Key" in other.stderr, other.stderr

    job = system.job(job_id)
    assert job["status"] == "scheduled" and job["run_at"]
    assert system.wait_final(job_id)["status"] == "succeeded"
    listing = cli(system, "list", "-u", user)
    assert listing.stdout.count(job_id) == 1 and listing.stdout.count("succeeded") == 1

    refused = cli(system, "submit", "echo", "-u", user, "--run-at", "2026-01-01T08:00:00")
    assert refused.returncode == 2 and "time zone" in refused.stderr, refused.stderr


def test_scripts_get_json_and_whole_ids_from_a_pipe(system: System):
    user = f"cli-{uuid.uuid4().hex[:6]}"
    submitted = cli(system, "submit", "echo", "-u", user, "-p", "n=1", "--json")
    assert submitted.returncode == 0, submitted.stderr
    first = json.loads(submitted.stdout)["job_id"]  # the API's answer, nothing else
    watched = cli(system, "submit", "wordcount", "-u", user, "-p", "text=a b a", "--watch",
                  "--json")
    assert watched.returncode == 0, watched.stderr
    job = json.loads(watched.stdout)  # the finished job; the progress bar went to stderr
    second = job["id"]
    assert job["status"] == "succeeded" and job["result"]["words"] == 3
    shown = cli(system, "show", first, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == first

    listed = cli(system, "list", "-u", user, "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)
    assert isinstance(jobs, list) and {item["id"] for item in jobs} == {first, second}
    assert all(item["user_id"] == user for item in jobs)

    # `taskbroker list | grep`: no terminal, so the table is as wide as its content, whatever
    # COLUMNS says: whole ids, every column.
    piped = cli(system, "list", "-u", user, columns=40)
    assert piped.returncode == 0, piped.stderr
    rows = [line for line in piped.stdout.splitlines() if first in line or second in line]
    assert len(rows) == 2, piped.stdout
    assert all(user in row for row in rows)
    assert "attempts" in piped.stdout and "user" in piped.stdout
