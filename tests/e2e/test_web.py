"""The web app end to end: Debian's Chromium, driven by playwright-core, uses the built
Angular app as the kernel serves it, against the real running system (store, kernel,
dispatcher, workers on Redis and nx-27017). Nothing is mocked.

Needs what `make frontend-setup frontend-build chromium` provides; a missing piece fails
with the command that provides it. The browser script is frontend/e2e/run.mjs; its
screenshots land in test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import httpx
import pytest

from tests.services import ROOT

FRONTEND = ROOT / "frontend"
DIST = FRONTEND / "dist" / "frontend" / "browser"
SCRIPT = FRONTEND / "e2e" / "run.mjs"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"

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
    screenshot.unlink(missing_ok=True)
    env = {
        **os.environ,
        "BASE_URL": system.api_url,
        "ARTIFACTS_DIR": str(ARTIFACTS),
        "CHROMIUM_PATH": CHROMIUM,
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
