"""The command-line client against the running system."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e


def cli(system: System, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "backend", *args, "--api-url", system.api_url],
                          capture_output=True, text=True, timeout=timeout,
                          env={**system.env, "COLUMNS": "200", "NO_COLOR": "1"})


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
    run = subprocess.run([sys.executable, "-m", "backend", "tasks", "--api-url",
                          "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 3 and "cannot reach the kernel API" in run.stderr
