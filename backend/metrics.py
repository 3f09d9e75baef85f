"""Prometheus metrics of every process, declared once (prometheus-client).

Who counts what (labels stay few: a task name, an executor, a queue, never a job or a
user id):

* the kernel: jobs submitted and cancelled, its data-service calls, its HTTP requests
  (Litestar's PrometheusMiddleware, one series per route template);
* the data service: its HTTP requests;
* the worker processes (through their executor's endpoint): attempts started, jobs
  succeeded, failed, retried; run time and queue wait; busy and idle workers;
* the dispatcher: queue depths (measured when scraped), jobs dead-lettered, jobs failed
  for an unknown executor, its data-service calls.

Every ``/metrics`` is open unless METRICS_TOKEN is set; then it wants
``Authorization: Bearer <METRICS_TOKEN>``.
"""

from __future__ import annotations

import hmac
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# One series less per counter: rate() needs no _created.
disable_created_metrics()

PREFIX = "taskbroker"
HTTP_PREFIX = f"{PREFIX}_http"  # Litestar's PrometheusMiddleware: <prefix>_requests_total, ...
METRICS_PATH = "/metrics"

RUN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
               30.0, 60.0, 300.0, 1800.0)
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                300.0, 1800.0)
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_JOB = ("task", "executor")

JOBS_SUBMITTED = Counter(f"{PREFIX}_jobs_submitted", "Jobs recorded and queued by the kernel.",
                         _JOB)
JOBS_STARTED = Counter(f"{PREFIX}_jobs_started", "Attempts a worker started (a retry is one "
                       "more).", _JOB)
JOBS_SUCCEEDED = Counter(f"{PREFIX}_jobs_succeeded", "Jobs that ended succeeded.", _JOB)
JOBS_FAILED = Counter(f"{PREFIX}_jobs_failed", "Jobs that ended failed (for good).", _JOB)
JOBS_RETRIED = Counter(f"{PREFIX}_jobs_retried", "Failed attempts that will be tried again.",
                       _JOB)
JOBS_CANCELLED = Counter(f"{PREFIX}_jobs_cancelled", "Jobs cancelled through the kernel.", _JOB)
JOBS_DEAD_LETTERED = Counter(f"{PREFIX}_jobs_dead_lettered", "Messages of failed jobs put on "
                             "the dead-letter queue.", _JOB)
JOB_RUN_SECONDS = Histogram(f"{PREFIX}_job_run_seconds", "Run time of one attempt of a task, "
                            "in seconds.", ("task",), buckets=RUN_BUCKETS)
JOB_QUEUE_WAIT_SECONDS = Histogram(f"{PREFIX}_job_queue_wait_seconds", "From a job's submit "
                                   "(or its run_at, if scheduled) to the start of its first "
                                   "attempt, in seconds.", ("task",),
                                   buckets=WAIT_BUCKETS)
QUEUE_DEPTH = Gauge(f"{PREFIX}_queue_depth", "Entries waiting in a queue when scraped (kind: "
                    "standard, rq, dead-letter, reports).", ("queue", "kind"))
WORKERS = Gauge(f"{PREFIX}_workers", "Worker processes of this executor by state (busy, idle).",
                ("state",))
DATA_SERVICE_SECONDS = Histogram(f"{PREFIX}_data_service_request_seconds", "Requests to the "
                                 "data service by route, in seconds (one per try).",
                                 ("method", "route", "outcome"), buckets=CALL_BUCKETS)

# Every metric family the code exposes (the Grafana dashboard may use only these). The
# HTTP ones come from Litestar's PrometheusMiddleware, named after HTTP_PREFIX.
HTTP_METRICS = (f"{HTTP_PREFIX}_requests_total", f"{HTTP_PREFIX}_request_duration_seconds",
                f"{HTTP_PREFIX}_requests_in_progress", f"{HTTP_PREFIX}_requests_error_total")
METRICS = (JOBS_SUBMITTED, JOBS_STARTED, JOBS_SUCCEEDED, JOBS_FAILED, JOBS_RETRIED,
           JOBS_CANCELLED, JOBS_DEAD_LETTERED, JOB_RUN_SECONDS, JOB_QUEUE_WAIT_SECONDS,
           QUEUE_DEPTH, WORKERS, DATA_SERVICE_SECONDS)


_enabled = True


def set_enabled(enabled: bool) -> None:
    """METRICS_ENABLED of this process (read once at its start)."""
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


def family_names() -> set[str]:
    """The names a query may use: each family with the suffixes Prometheus exposes."""
    names: set[str] = set()
    for metric in METRICS:
        base = metric._name
        kind = metric._type
        if kind == "counter":
            names.add(f"{base}_total")
        elif kind == "histogram":
            names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
        else:
            names.add(base)
    for name in HTTP_METRICS:
        if name.endswith("_seconds"):
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header may read metrics (any, when no token is set)."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


def unauthorized_body() -> dict[str, Any]:
    return {"status_code": 401, "detail": "send the metrics token (METRICS_TOKEN) as "
            "Authorization: Bearer <token>", "extra": {}}
