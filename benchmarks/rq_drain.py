"""One bare ``rq.SimpleWorker`` in burst mode, held at a gate: the RQ baseline's worker.

    python benchmarks/rq_drain.py REDIS_URL QUEUE GATE

Started ``--workers`` times by ``baselines.py``. Each imports RQ and connects, says
``ready`` (RPUSH ``GATE:ready``) and waits for ``GATE:go``, so every worker starts
dequeuing at the same moment and interpreter start-up stays out of the measured window.
It then drains QUEUE (RQ's defaults; logging at WARNING like ``rq worker --quiet``), says
``done`` and waits for ``GATE:exit`` (or SIGTERM): a live process, so that the benchmark
reads its CPU time from /proc after the window.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.noop

import redis
from rq import Queue, SimpleWorker

GATE_TIMEOUT = 120  # seconds to wait for the benchmark at each gate


def main() -> None:
    url, queue_name, gate = sys.argv[1:4]
    connection = redis.Redis.from_url(url)
    worker = SimpleWorker([Queue(queue_name, connection=connection)], connection=connection)
    connection.rpush(f"{gate}:ready", os.getpid())
    if connection.blpop([f"{gate}:go"], timeout=GATE_TIMEOUT) is None:
        raise SystemExit("rq_drain: no go from the benchmark")
    worker.work(burst=True, logging_level="WARNING")
    connection.rpush(f"{gate}:done", os.getpid())
    connection.blpop([f"{gate}:exit"], timeout=GATE_TIMEOUT)


if __name__ == "__main__":
    main()
