"""Every benchmark with its defaults, one after the other (what ``make bench`` runs).

    python benchmarks/run.py

Each script runs in its own process with this Python and prints its own table; this
script only heads each table with the command that made it, and exits non-zero if
any benchmark failed.
"""

from __future__ import annotations

import datetime
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["workers.py", "http_clients.py", "pipeline.py", "batch.py", "streams.py",
              "metrics_cost.py"]
CLEANUP_GRACE = 60.0  # seconds a benchmark gets to stop the servers it started


def run(script: str) -> int:
    """Run one benchmark; on Ctrl-C or SIGTERM let it stop its own servers first."""
    command = [sys.executable, str(HERE / script)]
    print(f"## {script}\n\n$ python benchmarks/{script}\n", flush=True)
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=HERE.parent)

    def forward(signum: int, frame: FrameType | None) -> None:
        # The benchmark turns SIGTERM into its own clean-up; pass it on and wait below.
        child.send_signal(signal.SIGTERM)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        code = child.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached the child too (same process group): it is already cleaning up.
        # Never kill it outright: its servers run in their own sessions and would be orphaned.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            child.wait(CLEANUP_GRACE)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGTERM)
            child.wait(CLEANUP_GRACE)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"\n({script}: exit {code}, {time.perf_counter() - started:.0f} s)\n", flush=True)
    return code


def main() -> None:
    print(f"# taskbroker benchmarks, {datetime.date.today().isoformat()}\n", flush=True)
    failed = [script for script in BENCHMARKS if run(script) != 0]
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
