"""The kernel's OpenAPI viewer end to end: Debian's Chromium, driven by playwright-core
(frontend/e2e/openapi.mjs), opens ``/schema`` (what the local run's banner prints) and
``/schema/swagger`` on the real running kernel, with no network beyond this machine. The
page must render the API under the kernel's own Content-Security-Policy, every asset
coming from the kernel itself.

Needs what `make frontend-setup chromium` provides (not the built web app: the viewer is
the kernel's own); a missing piece fails with the command that provides it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.e2e.conftest import System
from tests.services import ROOT

FRONTEND = ROOT / "frontend"
SCRIPT = FRONTEND / "e2e" / "openapi.mjs"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_openapi_viewer_renders_the_api_in_a_browser(system: System) -> None:
    assert (FRONTEND / "node_modules" / "playwright-core").is_dir(), (
        "frontend/node_modules is missing: run `make frontend-setup`"
    )
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: run `make chromium`"
    node = shutil.which("node")
    assert node, "node is not on PATH"
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "openapi-schema.png"
    screenshot.unlink(missing_ok=True)
    env = {**os.environ, "BASE_URL": system.api_url, "ARTIFACTS_DIR": str(ARTIFACTS),
           "CHROMIUM_PATH": CHROMIUM, "VIEWER_PATHS": "/schema,/schema/swagger"}
    run = subprocess.run([node, str(SCRIPT)], cwd=FRONTEND, env=env, capture_output=True,
                         text=True, timeout=240, check=False)
    output = f"{run.stdout}\n{run.stderr}"
    print(output)
    assert run.returncode == 0, f"the browser checks failed:\n{output}"
    assert "passed: " in run.stdout
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000, "no screenshot"
