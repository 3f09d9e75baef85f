"""``python -m backend.workers [--workers N] [--queues a,b]``: the worker pool."""

from __future__ import annotations

import argparse
import logging

from backend.logs import configure_process
from backend.metrics import set_enabled as set_metrics_enabled
from backend.settings import get_settings
from backend.tasks import load_task_modules
from backend.workers.executor import WorkerExecutor
from backend.workers.worker_metrics import executor_metrics

log = logging.getLogger("backend.workers")


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m backend.workers",
                                     description="Run N RQ workers on the executors' queues.")
    parser.add_argument("--workers", type=int, default=settings.worker.worker_count,
                        help="worker processes (default WORKER_COUNT=%(default)s)")
    parser.add_argument("--queues", default=",".join(settings.worker.executor_names),
                        help="comma-separated RQ queues, in priority order "
                             "(default EXECUTORS=%(default)s)")
    args = parser.parse_args(argv)
    queues = [name.strip() for name in args.queues.split(",") if name.strip()]
    if args.workers < 1 or not queues:
        parser.error("need at least one worker and one queue")
    configure_process("executor", settings)
    set_metrics_enabled(settings.observability.metrics_enabled)  # the forked workers' too
    # Imported once here, so every forked worker has the tasks without importing them again.
    load_task_modules(settings.worker.task_module_names)
    executor = WorkerExecutor(settings, args.workers, queues)
    # Before the workers start: they inherit where their counters go.
    with executor_metrics(settings.observability, executor.connections.redis,
                          lambda: [worker.name for worker in executor.workers]):
        executor.run()


if __name__ == "__main__":
    main()
