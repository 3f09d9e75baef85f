"""The hooks every job runs through (one concern per file)."""

from backend.workers.middleware.base import JobRun, Middleware, Outcome, SkipJob, execute
from backend.workers.middleware.cancellation import Cancellation
from backend.workers.middleware.reporting import Reporting
from backend.workers.middleware.retries import Retries, retry_delay
from backend.workers.middleware.timeouts import Timeouts
from backend.workers.middleware.timing import Timing


def default_middleware() -> list[Middleware]:
    """The hooks every job runs through, in order."""
    return [Timing(), Reporting(), Retries(), Timeouts(), Cancellation()]


__all__ = [
    "Cancellation",
    "JobRun",
    "Middleware",
    "Outcome",
    "Reporting",
    "Retries",
    "SkipJob",
    "Timeouts",
    "Timing",
    "default_middleware",
    "execute",
    "retry_delay",
]
