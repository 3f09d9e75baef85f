"""Lighthouse over every page of the web app, on a phone and a desktop (``make lighthouse``).

    python benchmarks/lighthouse.py [--dist frontend/dist/frontend/browser] [--jobs 300]

Starts the whole system as the browser tests do (Redis, nx-27017, data service, kernel
serving the built web app, dispatcher, two workers), fills it with ``--jobs`` jobs (most
finished, some failed, a few still running or queued), signs an admin in, and runs
frontend/perf/lighthouse.mjs (Lighthouse 12 in /usr/bin/chromium) over the overview, My
jobs, a job, Submit, API tokens and the sign-in page. Prints the table; exits 1 when a
page misses its target. Needs `make frontend-build chromium` and npm (Lighthouse is
fetched by npx on first use).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from benchmarks.common import ROOT, machine, process_logs
from tests.e2e.conftest import E2E_USER, System, _start_system, wait_for
from tests.services import TEST_PASSWORD

SCRIPT = ROOT / "frontend" / "perf" / "lighthouse.mjs"
CHROMIUM = "/usr/bin/chromium"
FINAL = {"succeeded", "failed", "cancelled"}
BATCH = 100  # the kernel's largest batch


def fill(system: System, jobs: int) -> str:
    """``jobs`` jobs of the signed-in admin: 1 in 15 failing, 6 still unfinished (two run
    for ten minutes, four wait behind them). Returns a finished job's id for the job page."""
    unfinished = 6
    items = [{"job_name": "fail", "params": {"permanent": True}} if n % 15 == 7
             else {"job_name": "echo", "params": {"n": n}}
             for n in range(jobs - unfinished)]
    items += [{"job_name": "simulate", "estimated_time": 600, "params": {"duration": 600}}
              for _ in range(unfinished)]
    ids: list[str] = []
    for start in range(0, len(items), BATCH):
        body = {"jobs": [{"user_id": E2E_USER, "estimated_time": 1, **item}
                         for item in items[start:start + BATCH]]}
        answer = system.http.post(f"{system.api_url}/api/v1/jobs/batch", json=body)
        assert answer.status_code == 200, answer.text
        ids += [result["job_id"] for result in answer.json()["results"]]
    finished = ids[: jobs - unfinished]
    wait_for(lambda: system.job(finished[-1])["status"] in FINAL, 300,
             "the finished part of the jobs to finish")
    return finished[1]


def browser_session(api_url: str) -> str:
    """The ``name=value`` of a browser's session cookie, signed in as the admin."""
    answer = httpx.post(f"{api_url}/api/v1/auth/login", timeout=30,
                        json={"username": E2E_USER, "password": TEST_PASSWORD})
    assert answer.status_code == 200, answer.text
    # As the browser would send them back: each Set-Cookie's first part, untouched (the
    # session's value is quoted, and holds a space).
    return "; ".join(header.split(";", 1)[0]
                     for header in answer.headers.get_list("set-cookie"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dist", type=Path,
                        default=ROOT / "frontend" / "dist" / "frontend" / "browser",
                        help="the built web app the kernel serves")
    parser.add_argument("--jobs", type=int, default=300, help="jobs to create first")
    parser.add_argument("--presets", default="mobile,desktop")
    parser.add_argument("--reports", type=Path, default=None,
                        help="a folder to keep each run's JSON report in")
    args = parser.parse_args()
    node = shutil.which("node")
    if not (args.dist / "index.html").is_file():
        raise SystemExit(f"no built web app at {args.dist}: run `make frontend-build`")
    if not node or not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f"needs node and {CHROMIUM}: run `make chromium`")

    with process_logs("lighthouse-") as logs:
        system = _start_system("redis", logs.path, extra={"FRONTEND_DIST": str(args.dist)})
        try:
            started = time.perf_counter()
            job_id = fill(system, args.jobs)
            print(f"{args.jobs} jobs made in {time.perf_counter() - started:.0f} s; "
                  f"machine: {machine()}", flush=True)
            env = {**os.environ, "BASE_URL": system.api_url, "JOB_ID": job_id,
                   "SESSION_COOKIE": browser_session(system.api_url),
                   "CHROME_PATH": CHROMIUM, "PRESETS": args.presets}
            if args.reports:
                env["REPORTS_DIR"] = str(args.reports.resolve())
            code = subprocess.run([node, str(SCRIPT)], env=env, check=False).returncode
        finally:
            system.stop_all()
        logs.ok = True
    raise SystemExit(code)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
