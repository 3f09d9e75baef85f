"""Starting the one-command local run (``python -m backend.local``, what ``make run`` runs)
in a test: free ports, a data folder of the test's own."""

from __future__ import annotations

import sys
from pathlib import Path

from backend.local.embedded import free_port
from tests.services import ManagedProcess


def launch(env: dict[str, str], log_dir: Path, name: str = "local-run") -> ManagedProcess:
    """The launcher, once it printed its banner (everything answers)."""
    launcher = ManagedProcess(name, [sys.executable, "-m", "backend.local"], log_dir,
                              env=env).start()
    launcher.wait_until(lambda: "taskbroker is up" in launcher.log_path.read_text(), 120)
    return launcher


def local_env(data_dir: Path, grace: str) -> tuple[dict[str, str], str]:
    """The launcher's settings on free ports, and the kernel's URL."""
    ports = {name: free_port() for name in ("redis", "mongo", "store", "api", "dash")}
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "MONGODB_URL": f"mongodb://127.0.0.1:{ports['mongo']}",
        "STORE_PORT": str(ports["store"]),
        "DATA_SERVICE_URL": f"http://127.0.0.1:{ports['store']}",
        "API_PORT": str(ports["api"]),
        "DASHBOARD_PORT": str(ports["dash"]),
        "DATA_DIR": str(data_dir),
        "QUEUE_BACKEND": "redis",
        "WORKER_COUNT": "1",
        "SHUTDOWN_GRACE": grace,
        "RETRY_BACKOFF_BASE": "0.5",
    }
    return env, f"http://127.0.0.1:{ports['api']}"
