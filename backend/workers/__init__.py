"""The dispatcher (STANDARD queue -> RQ) and the RQ workers that run the tasks.

Processes: ``python -m backend.workers.dispatcher`` and ``python -m backend.workers``.
"""

from backend.workers.executor import WorkerExecutor
from backend.workers.worker import StandardQueueWorker, Worker

__all__ = ["StandardQueueWorker", "Worker", "WorkerExecutor"]
