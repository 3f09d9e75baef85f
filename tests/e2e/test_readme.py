"""The README, followed by a reader on a fresh clone: every ```sh block runs, in order, in one
bash, against the system started the way the README says (``make run`` is
``python -m backend.local``; here on free ports with a data folder of the test's own).

The reader's shell: a second terminal in the project folder (here a folder of links to this
clone's files, with no ``.env`` and no ``.data`` but the run's own), a home of its own, no
virtualenv on PATH until the README activates it, and the admin password the first start
printed given to the README's ``read -rs TB_PASSWORD``. The README's default addresses
(127.0.0.1:8000, :8001, :9181, :8765) are replaced by the run's ports, and curl fails on an
HTTP error (``~/.curlrc``: fail-with-body), so a refused request fails its block. Illustration
blocks (```console, ```text, ```json) do not run; the convention is in an HTML comment at
the top of README.md.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from backend.local.embedded import free_port
from backend.settings import setting_names
from tests.e2e.conftest import wait_for
from tests.e2e.local_run import launch, local_env
from tests.services import sign_in

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RUN = "sh"
ILLUSTRATIONS = {"console", "text", "json", "python", "yaml"}
DEFAULT_PORTS = {"api": 8000, "store": 8001, "dash": 9181, "hook": 8765}
UNFINISHED = {"created", "queued", "running", "retrying"}
# Jobs the README leaves unfinished on purpose, and the ones it cancels.
SCHEDULED_EXAMPLES = 3  # `submit echo --delay 600`, curl's "delay": 300 and "run_at"
CANCELLED_EXAMPLES = 1  # `taskbroker cancel "$(taskbroker submit simulate -t 60)"`


def code_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced block, in order."""
    blocks: list[tuple[str, str]] = []
    language: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        if language is None:
            if line.startswith("```"):
                language = line[3:].strip().split(" ")[0]
                body = []
        elif line.startswith("```"):
            blocks.append((language, "\n".join(body)))
            language = None
        else:
            body.append(line)
    assert language is None, "a code block is not closed"
    return blocks


def _with_ports(text: str, ports: dict[str, int]) -> str:
    by_default = {str(DEFAULT_PORTS[name]): str(port) for name, port in ports.items()}
    return re.sub(r"(?<=127\.0\.0\.1:)(\d+)\b",
                  lambda m: by_default.get(m.group(1), m.group(1)), text)


def _project_folder(tmp_path: Path, data_dir: Path) -> Path:
    """The reader's project folder: this clone's files (no .env), its .venv, the run's .data."""
    folder = tmp_path / "clone"
    folder.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in {".env", ".data", ".venv", ".git"}:
            (folder / entry.name).symlink_to(entry)
    (folder / ".venv").symlink_to(Path(sys.prefix))
    (folder / ".data").symlink_to(data_dir)
    return folder


def _reader_env(home: Path, ports: dict[str, int]) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {name: value for name, value in os.environ.items()
           if name not in set(setting_names()) | {"VIRTUAL_ENV", "PYTHONHOME"}}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and p != venv_bin)
    home.mkdir()
    (home / ".curlrc").write_text("fail-with-body\nshow-error\n")
    env.update({
        "HOME": str(home), "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200",
        # What the CLI reaches by default on a reader's machine, at this run's ports.
        "API_URL": f"http://127.0.0.1:{ports['api']}",
        "DATA_SERVICE_URL": f"http://127.0.0.1:{ports['store']}",
    })
    env.pop("XDG_CONFIG_HOME", None)
    return env


def _script(blocks: list[str], folder: Path) -> str:
    lines = ["set -eo pipefail", f"cd {folder}"]
    for number, body in enumerate(blocks):
        lines += [f"echo '::block {number}::'", body, f"echo '::done {number}::'"]
    return "\n".join(lines) + "\n"


def _outputs(stdout: str) -> dict[int, str]:
    """Each block's output, by its number (only the blocks that started)."""
    found = re.split(r"^::block (\d+)::$", stdout, flags=re.M)
    return {int(found[i]): found[i + 1] for i in range(1, len(found) - 1, 2)}


def test_readme_uses_one_fence_for_what_runs():
    languages = {language for language, _ in code_blocks(README.read_text())}
    assert RUN in languages
    assert languages <= ILLUSTRATIONS | {RUN}, (
        f"fences {sorted(languages - ILLUSTRATIONS - {RUN})}: use ```sh (runs) or "
        "```console / ```text (does not)")


def test_every_sh_block_of_the_readme_runs_against_a_live_system(tmp_path, log_dir):
    readme = README.read_text()
    blocks = code_blocks(readme)
    allowed = re.search(r"^\$ WEBHOOK_ALLOWED_HOSTS=127\.0\.0\.1:(\d+) make run$", readme, re.M)
    assert allowed and int(allowed.group(1)) == DEFAULT_PORTS["hook"], "the webhook recipe"

    data_dir = tmp_path / "data"
    env, api = local_env(data_dir, grace="5")
    ports = {"api": int(env["API_PORT"]), "store": int(env["STORE_PORT"]),
             "dash": int(env["DASHBOARD_PORT"]), "hook": free_port()}
    env.update({"WORKER_COUNT": "2",
                "WEBHOOK_ALLOWED_HOSTS": f"127.0.0.1:{ports['hook']}",
                "WEBHOOK_BACKOFF_BASE": "0.5"})
    launcher = launch(env, log_dir, "readme-run")
    try:
        banner = launcher.log_path.read_text()
        password = re.search(r"Sign in as admin with the password (\S+)", banner)
        assert password, launcher.log_tail()

        # The tour's banner is the one the start prints (addresses and lines alike).
        shown = next(body for language, body in blocks if "taskbroker is up:" in body)
        printed = banner.replace(str(data_dir), ".data")
        for line in shown.splitlines():
            if re.match(r"^  (web app|kernel API|data service|rq-dashboard|queue backend) ", line):
                expected = " ".join(_with_ports(line, ports).split())
                assert any(" ".join(p.split()) == expected for p in printed.splitlines()), (
                    f"the README's banner line {line.strip()!r} is not what the start prints")

        runnable = [_with_ports(body, ports) for language, body in blocks if language == RUN]
        folder = _project_folder(tmp_path, data_dir)
        script = tmp_path / "readme.sh"
        script.write_text(_script(runnable, folder))
        run = subprocess.run(["bash", str(script)], input=password.group(1) + "\n",
                             capture_output=True, text=True, timeout=150,
                             env=_reader_env(tmp_path / "home", ports), cwd=folder)
        (log_dir / "readme-run.out").write_text(run.stdout + "\n--- stderr\n" + run.stderr)
        outputs = _outputs(run.stdout)
        failed = next((n for n in outputs if f"::done {n}::" not in run.stdout), None)
        assert run.returncode == 0 and failed is None, (
            f"README sh block {failed} failed (exit {run.returncode}):\n"
            f"{runnable[failed] if failed is not None else ''}\n--- output\n"
            f"{outputs.get(failed, '')[-2000:]}\n--- stderr\n{run.stderr[-2000:]}")
        assert len(outputs) == len(runnable)

        # The idempotent submit answered one job id, twice.
        [repeated] = [out for n, out in outputs.items() if "for attempt in 1 2" in runnable[n]]
        ids = re.findall(r'"job_id":"([0-9a-f]{24})"', repeated)
        assert len(ids) == 2 and len(set(ids)) == 1, repeated
        # The webhook receiver got the job the recipe submitted, and its signature verified.
        [recipe] = [out for n, out in outputs.items() if "webhook_receiver.py" in runnable[n]]
        submitted = re.search(r"^([0-9a-f]{24})$", recipe, re.M)
        assert submitted, recipe
        assert f"verified: job {submitted.group(1)} succeeded" in recipe, recipe

        # Every job ends as the README says: succeeded, but the scheduled and the cancelled.
        auth = {"Authorization": f"Bearer {sign_in(api, 'admin', password.group(1))}"}

        def settled():
            jobs = httpx.get(f"{api}/api/v1/jobs", params={"limit": 100}, headers=auth,
                             timeout=10).json()["items"]
            return jobs if not {job["status"] for job in jobs} & UNFINISHED else None

        jobs = wait_for(settled, 30, "the README's jobs to finish", interval=0.5)
        statuses = [job["status"] for job in jobs]
        assert statuses.count("scheduled") == SCHEDULED_EXAMPLES, statuses
        assert statuses.count("cancelled") == CANCELLED_EXAMPLES, statuses
        assert set(statuses) == {"succeeded", "scheduled", "cancelled"}, statuses
    finally:
        launcher.signal(signal.SIGINT)
        assert launcher.proc is not None
        launcher.proc.wait(60)
