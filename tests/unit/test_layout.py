"""One folder per process: each process loads its own folder and the shared modules at the
root of ``backend/``, never another process's code (the dispatcher does not load the worker
code, the kernel does not load the data service's documents, and so on)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BACKEND = ROOT / "backend"

# The process's entry module -> the folders of backend/ it may load besides the root's
# shared modules. backend/store/client.py is how other processes talk to the data service.
PROCESSES = {
    "backend.api.__main__": {"api", "queues", "tasks"},
    "backend.store.__main__": {"store"},
    "backend.dispatcher.__main__": {"dispatcher", "queues"},
    "backend.workers.__main__": {"workers", "tasks"},
    "backend.dashboard.__main__": {"dashboard"},
}
CLIENT_OF_STORE = {"backend.store", "backend.store.client", "backend.store.client_trace"}
FOLDERS = {path.name for path in BACKEND.iterdir()
           if path.is_dir() and (path / "__init__.py").exists()}

# Import the entry module without running its main(): it is guarded by __name__.
_PROBE = """
import json, runpy, sys
runpy.run_module(sys.argv[1], run_name="probe")
print(json.dumps(sorted(name for name in sys.modules if name.startswith("backend."))))
"""


def _loaded(module: str) -> list[str]:
    run = subprocess.run([sys.executable, "-c", _PROBE, module], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("entry", sorted(PROCESSES))
def test_a_process_loads_only_its_own_folder_and_the_shared_modules(entry: str) -> None:
    own = PROCESSES[entry]
    foreign = []
    for name in _loaded(entry):
        folder = name.split(".")[1]
        if folder not in FOLDERS or folder in own:
            continue  # a shared module at the root, or the process's own code
        if folder == "store" and name in CLIENT_OF_STORE:
            continue
        foreign.append(name)
    assert foreign == [], f"{entry} loads another process's code: {foreign}"


def test_every_process_folder_is_claimed() -> None:
    """A new folder under backend/ is either a process above or named here as shared."""
    shared = {"queues", "tasks", "local", "cli"}
    claimed = {entry.split(".")[1] for entry in PROCESSES} | shared
    assert sorted(FOLDERS - claimed) == []
