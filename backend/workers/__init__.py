"""The side that runs jobs (the worker executor and its RQ workers) and, in
:mod:`backend.workers.dispatcher`, the side that feeds and follows them (dispatch,
recorder, reconciler).

Processes: ``python -m backend.workers.dispatcher`` and ``python -m backend.workers``.
"""

from backend.workers.executor import WorkerExecutor
from backend.workers.worker import StandardQueueWorker, Worker

__all__ = ["StandardQueueWorker", "Worker", "WorkerExecutor"]
