"""The hooks every job runs through (one concern per file)."""

from backend.metrics import enabled as metrics_enabled
from backend.workers.middleware.base import JobRun, Middleware, Outcome, SkipJob, execute
from backend.workers.middleware.cancellation import Cancellation
from backend.workers.middleware.metrics import Metrics
from backend.workers.middleware.reporting import Reporting
from backend.workers.middleware.retries import Retries, retry_delay
from backend.workers.middleware.timeouts import Timeouts
from backend.workers.middleware.timing import Timing
from backend.workers.middleware.tracing import Tracing


def default_middleware() -> list[Middleware]:
    """The hooks every job runs through, in order."""
    counted = [Metrics()] if metrics_enabled() else []
    return [Timing(), *counted, Tracing(), Reporting(), Retries(), Timeouts(), Cancellation()]


__all__ = [
    "Cancellation",
    "JobRun",
    "Metrics",
    "Middleware",
    "Outcome",
    "Reporting",
    "Retries",
    "SkipJob",
    "Timeouts",
    "Timing",
    "Tracing",
    "default_middleware",
    "execute",
    "retry_delay",
]
