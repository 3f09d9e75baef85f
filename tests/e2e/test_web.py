"""The web app end to end: Debian's Chromium, driven by playwright-core, uses the built
Angular app as the kernel serves it, against the real running system (store, kernel,
dispatcher, workers on Redis and nx-27017). Nothing is mocked.

Needs what `make frontend-setup frontend-build chromium` provides; a missing piece fails
with the command that provides it. The browser script is frontend/e2e/run.mjs; its
screenshots land in test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import httpx
import pytest

from tests.e2e.conftest import E2E_USER
from tests.services import ROOT, TEST_PASSWORD

FRONTEND = ROOT / "frontend"
DIST = FRONTEND / "dist" / "frontend" / "browser"
SCRIPT = FRONTEND / "e2e" / "run.mjs"
LIVE_SCRIPT = FRONTEND / "e2e" / "live.mjs"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
IMMUTABLE = "public, max-age=31536000, immutable"
# What index.html loads: `main-S5QL53PH.js`, `chunk-….js`, `styles-….css` (Angular's hashes).
HASHED_ASSET = re.compile(r'(?:src|href)="([\w.-]+-[A-Z0-9]{8}\.(?:js|css))"')

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def _require_tools() -> str:
    assert (DIST / "index.html").is_file(), (
        f"the built web app is missing ({DIST}): run `make frontend-build`"
    )
    assert (FRONTEND / "node_modules" / "playwright-core").is_dir(), (
        "frontend/node_modules is missing: run `make frontend-setup`"
    )
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: run `make chromium`"
    node = shutil.which("node")
    assert node, "node is not on PATH"
    return node


def test_web_app_submits_follows_fails_and_cancels_jobs(system) -> None:
    node = _require_tools()
    page = httpx.get(f"{system.api_url}/jobs", timeout=15)
    assert page.status_code == 200 and "<app-root" in page.text, (
        "the kernel does not serve the built web app at / (FRONTEND_DIST)"
    )

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "jobs-page.png"
    overview = ARTIFACTS / "overview.png"
    screenshot.unlink(missing_ok=True)
    overview.unlink(missing_ok=True)
    env = {
        **os.environ,
        "BASE_URL": system.api_url,
        "ARTIFACTS_DIR": str(ARTIFACTS),
        "CHROMIUM_PATH": CHROMIUM,
        # The browser signs in as the system's test user (conftest.E2E_USER).
        "E2E_USERNAME": E2E_USER,
        "E2E_PASSWORD": TEST_PASSWORD,
    }
    run = subprocess.run([node, str(SCRIPT)], cwd=FRONTEND, env=env, capture_output=True,
                         text=True, timeout=540, check=False)
    output = f"{run.stdout}\n{run.stderr}"
    print(output)  # shown by pytest -rA / on failure: each check and what it saw
    assert run.returncode == 0, f"the browser checks failed:\n{output}"
    assert "passed: " in run.stdout
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000, (
        "no screenshot of the jobs page"
    )
    assert overview.is_file() and overview.stat().st_size > 20_000, (
        "no screenshot of the overview's charts"
    )


def test_four_tabs_follow_twenty_running_jobs_on_one_connection_each(system) -> None:
    """Twenty unfinished jobs on My jobs cost one list request a round (mostly 304s) and one
    live stream per tab, so four tabs of one browser (about six connections per host for all
    of them) each load and show the jobs moving; the keyboard keeps its place on Refresh and
    on "Older →" reaching the last page (frontend/e2e/live.mjs)."""
    node = _require_tools()
    system.submit("echo")  # an older, finished job: a second page
    # Slow enough to stay unfinished through the checks: two run (one worker each), the
    # rest wait in the queue.
    jobs = [system.submit("simulate", {"duration": 300}, estimated_time=300)
            for _ in range(20)]
    env = {
        **os.environ,
        "BASE_URL": system.api_url,
        "CHROMIUM_PATH": CHROMIUM,
        "E2E_USERNAME": E2E_USER,
        "E2E_PASSWORD": TEST_PASSWORD,
        "JOB_IDS": ",".join(reversed(jobs)),
        "MEASURE_SECONDS": "60",
        # A list request every LIST_REFRESH_MS (10 s) and nothing per job; with a stream
        # per job (three at most) and the other jobs polled, the page sent 202 a minute.
        "MAX_PER_MINUTE": "12",
    }
    try:
        run = subprocess.run([node, str(LIVE_SCRIPT)], cwd=FRONTEND, env=env,
                             capture_output=True, text=True, timeout=300, check=False)
    finally:
        for job_id in jobs:
            system.cancel(job_id)
    output = f"{run.stdout}\n{run.stderr}"
    print(output)
    assert run.returncode == 0, f"the browser checks failed:\n{output}"
    assert "requests per minute on My jobs with 20 unfinished jobs" in run.stdout
    assert "4 tabs load and show their jobs moving, one live stream each" in run.stdout


def test_kernel_caches_hashed_bundles_for_good_and_revalidates_index(system) -> None:
    """A bundle named by its content hash is cached for a year, never asked for again;
    index.html (and every app route answered with it) is revalidated on each load, so a
    new build's index, naming new bundles, is picked up at once."""
    assert (DIST / "index.html").is_file(), f"the built web app is missing ({DIST})"
    with httpx.Client(base_url=system.api_url, timeout=15) as http:
        index = http.get("/")
        assert index.status_code == 200 and "<app-root" in index.text
        assert index.headers.get("cache-control") == "no-cache", index.headers

        # The SPA fallback serves index.html for app routes: the same rule.
        for path in ("/index.html", "/jobs", f"/jobs/{'0' * 24}", "/submit?x=1", "/no/such/page"):
            page = http.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"].startswith("text/html"), path
            assert page.headers.get("cache-control") == "no-cache", (path, page.headers)
            # HEAD (monitors, link checkers) answers the same, without the page.
            head = http.head(path)
            assert head.status_code == 200 and not head.content, path
            assert head.headers.get("content-length") == page.headers.get("content-length"), path
            assert head.headers.get("cache-control") == "no-cache", path

        bundles = sorted(set(HASHED_ASSET.findall(index.text)))
        assert any(n.startswith("main-") and n.endswith(".js") for n in bundles), bundles
        assert any(n.endswith(".css") for n in bundles), bundles
        for name in bundles:
            for method in ("GET", "HEAD"):
                asset = http.request(method, f"/{name}")
                assert asset.status_code == 200, (method, name)
                assert asset.headers.get("cache-control") == IMMUTABLE, (method, name,
                                                                         asset.headers)
        # Not hashed: cached, but revalidated.
        assert http.get("/favicon.ico").headers.get("cache-control") == "no-cache"

        # A hashed name that does not exist is a 404, and that 404 is never kept a year
        # (the file may come with the next deploy).
        missing = http.get("/main-ZZZZZZZZ.js")
        assert missing.status_code == 404
        assert "immutable" not in missing.headers.get("cache-control", "")
        # Unknown API paths stay JSON 404s (problem details, docs/errors.md).
        for path in ("/api/v1/nothing", "/api/nothing"):
            unknown = http.get(path)
            assert unknown.status_code == 404, path
            assert unknown.headers["content-type"].startswith("application/problem+json"), path
            assert "immutable" not in unknown.headers.get("cache-control", "")
