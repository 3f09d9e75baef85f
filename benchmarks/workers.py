"""Jobs/s of RQ's forking Worker against SimpleWorker (and ours), on a real Redis.

    python benchmarks/workers.py [--n 200] [--repeat 3]

One worker process, burst mode, N ``echo`` jobs enqueued up front; the job calls the
registered ``echo`` task (no data service), so only the worker's own cost differs:
the forking Worker forks a work horse per job, SimpleWorker runs the job in place.
Prints the best of ``--repeat`` runs per class, the machine, and the ratio.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import rq  # noqa: E402
from rq import Queue, SimpleWorker  # noqa: E402
from rq import Worker as ForkingWorker  # noqa: E402

from backend.embedded import answers, free_port, redis_command  # noqa: E402
from backend.tasks import TaskContext, get_task, load_task_modules  # noqa: E402
from backend.workers.rq_worker import TaskWorker  # noqa: E402


def bench_echo(job_id: str, params: dict) -> dict:
    """The job: the registry's echo task with a context that reports nowhere."""
    return get_task("echo").func(TaskContext(job_id=job_id, params=params))


def run_once(connection: redis.Redis, worker_class: type, n: int) -> float:
    connection.flushdb()
    queue = Queue("bench", connection=connection)
    for i in range(n):
        # By path: RQ refuses functions of __main__; ROOT is on sys.path for the import.
        queue.enqueue_call("benchmarks.workers.bench_echo", args=(f"{i:024x}", {"i": i}),
                           result_ttl=60)
    kwargs = {"heartbeat": 5.0} if worker_class is TaskWorker else {}
    worker = worker_class([queue], connection=connection, **kwargs)
    started = time.perf_counter()
    worker.work(burst=True, logging_level="WARNING")
    elapsed = time.perf_counter() - started
    done = queue.finished_job_registry.get_job_count(cleanup=False)
    if done != n:
        raise SystemExit(f"{worker_class.__name__}: only {done} of {n} jobs finished")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="jobs per run (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per class (default 3)")
    args = parser.parse_args()
    load_task_modules()
    logging.getLogger("rq").setLevel(logging.WARNING)

    port = free_port()
    server = subprocess.Popen(redis_command(port), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not answers("127.0.0.1", port):
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        connection = redis.Redis(port=port)
        classes = [("rq.Worker (fork per job)", ForkingWorker),
                   ("rq.SimpleWorker", SimpleWorker),
                   ("TaskWorker (ours: SimpleWorker + heartbeats)", TaskWorker)]
        rates = {label: max(run_once(connection, cls, args.n) for _ in range(args.repeat))
                 for label, cls in classes}
    finally:
        server.terminate()
        server.wait(10)

    baseline = rates[classes[0][0]]
    print(f"N={args.n} echo jobs, 1 worker process (burst), best of {args.repeat}; "
          f"{platform.machine()} x{os.cpu_count()}, Python {platform.python_version()}, "
          f"RQ {rq.__version__}, Redis on localhost")
    print(f"| {'worker class':<46} | {'jobs/s':>8} | {'vs fork':>7} |")
    print(f"|{'-' * 48}|{'-' * 10}|{'-' * 9}|")
    for label, rate in rates.items():
        print(f"| {label:<46} | {rate:8.0f} | {rate / baseline:6.1f}x |")


if __name__ == "__main__":
    main()
