"""``python -m backend.workers [--workers N] [--queues a,b]``: the worker pool."""

from __future__ import annotations

import argparse
import logging

from backend.logs import configure_logging
from backend.settings import get_settings
from backend.tasks import load_task_modules
from backend.workers.executor import WorkerExecutor

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
    configure_logging(settings.local.log_level)
    # Imported once here, so every forked worker has the tasks without importing them again.
    load_task_modules(settings.worker.task_module_names)
    WorkerExecutor(settings, args.workers, queues).run()


if __name__ == "__main__":
    main()
