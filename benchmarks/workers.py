"""Jobs/s of RQ's forking Worker against SimpleWorker (and ours), on a real Redis.

    python benchmarks/workers.py [--n 200] [--repeat 3]

One worker process, burst mode, N ``echo`` jobs enqueued up front; the job calls the
registered ``echo`` task (no data service), so only the worker's own cost differs:
the forking Worker forks a work horse per job, SimpleWorker runs the job in place.
``TaskWorker`` runs what the dispatcher enqueues (the job runner, JSON-serialized),
with everything a job gets in the system: the stop/done check and the ``running`` and
end reports appended to the report stream (nothing records them here).
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

import tempfile  # noqa: E402

import redis  # noqa: E402
import rq  # noqa: E402
from bson import ObjectId  # noqa: E402
from rq import Queue, SimpleWorker  # noqa: E402
from rq import Worker as ForkingWorker  # noqa: E402

from backend.jobs import QueueMessage  # noqa: E402
from backend.local.embedded import answers, free_port, redis_command  # noqa: E402
from backend.rqjobs import BatchEnqueuer, rq_queue  # noqa: E402
from backend.settings import Settings  # noqa: E402
from backend.tasks import TaskContext, get_task, load_task_modules  # noqa: E402
from backend.workers.connections import WorkerConnections, set_connections  # noqa: E402
from backend.workers.worker import TaskWorker  # noqa: E402


def bench_echo(job_id: str, params: dict) -> dict:
    """The job: the registry's echo task with a context that reports nowhere."""
    return get_task("echo").func(TaskContext(job_id=job_id, params=params))


def run_once(connection: redis.Redis, worker_class: type, n: int, settings: Settings) -> float:
    connection.flushdb()
    if worker_class is TaskWorker:
        queue = rq_queue(connection, "bench")
        messages = [QueueMessage(job_id=str(ObjectId()), name="echo", executor="bench",
                                 params={"i": i}) for i in range(n)]
        BatchEnqueuer(connection, settings.worker).enqueue(messages)
    else:
        queue = Queue("bench", connection=connection)
        for i in range(n):
            # By path: RQ refuses functions of __main__; ROOT is on sys.path for the import.
            queue.enqueue_call("benchmarks.workers.bench_echo",
                               args=(f"{i:024x}", {"i": i}), result_ttl=60)
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
    data_dir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    server = subprocess.Popen(redis_command(port, data_dir), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not answers("127.0.0.1", port):
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        connection = redis.Redis(port=port)
        settings = Settings()
        settings.redis.redis_url = f"redis://127.0.0.1:{port}/0"
        settings.worker.rq_result_ttl = 60
        set_connections(WorkerConnections(settings, connection=connection))
        classes = [("rq.Worker (fork per job)", ForkingWorker),
                   ("rq.SimpleWorker", SimpleWorker),
                   ("TaskWorker (ours: + heartbeats, markers, reports)", TaskWorker)]
        rates = {label: max(run_once(connection, cls, args.n, settings)
                            for _ in range(args.repeat))
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
