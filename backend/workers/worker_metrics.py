"""The worker executor's ``/metrics`` (METRICS_PORT): the counters of all its workers.

Worker processes come and go (a dead one is replaced), so their counters cannot live in
their memory. prometheus-client's multiprocess mode keeps them in files instead: the
executor makes a fresh directory before it forks its first worker, each process (the
workers, and the executor itself for the jobs its reaper ends) writes its values into a
file of its own there, and the executor's endpoint sums the files when scraped. A
worker that dies leaves its file behind, so what it counted still counts; the directory
goes when the executor stops (Prometheus sees a restart as a counter reset).

The endpoint also says how many of the executor's workers are busy and idle, read from
RQ's worker registry when scraped.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from backend.metrics import METRICS_PATH, WORKERS, authorized
from backend.rqjobs import worker_key
from backend.settings import ObservabilitySettings

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class WorkerStates(Collector):
    """``taskbroker_workers{state}``: this executor's live workers, busy or idle."""

    def __init__(self, connection: redis.Redis, names: Callable[[], list[str]]) -> None:
        self.redis = connection
        self.names = names

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(WORKERS._name, WORKERS._documentation, labels=["state"])
        names = self.names()
        busy = idle = 0
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hget(worker_key(name), "state")
                states = pipe.execute()
        except redis.RedisError as exc:
            log.warning("metrics: worker states not read: %s", exc)
            states = []
        for state in states:
            if state is None:
                continue  # not registered yet, or gone
            if state == b"busy":
                busy += 1
            else:
                idle += 1
        family.add_metric(["busy"], busy)
        family.add_metric(["idle"], idle)
        yield family


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape is noise


def _guarded(app: Any, token: str) -> Any:
    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != METRICS_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: the metrics are at /metrics\n"]
        if not authorized(environ.get("HTTP_AUTHORIZATION"), token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                ("WWW-Authenticate", "Bearer")])
            return [b"send the metrics token (METRICS_TOKEN) as Authorization: Bearer\n"]
        return app(environ, start_response)

    return guarded


def use_multiprocess_dir() -> str:
    """Make a fresh directory and switch this process (and every process it forks from
    now on) to prometheus-client's multiprocess values in it; returns the directory."""
    directory = tempfile.mkdtemp(prefix="taskbroker-metrics-")
    # prometheus-client's files are found through this variable (in every forked worker).
    os.environ[MULTIPROC_ENV] = directory
    values.ValueClass = values.MultiProcessValue()
    return directory


@contextmanager
def executor_metrics(settings: ObservabilitySettings, connection: redis.Redis,
                     worker_names: Callable[[], list[str]]) -> Iterator[int | None]:
    """Serve the executor's ``/metrics`` while inside (METRICS_PORT 0: not at all);
    yields the port served, or None. Enter it before the workers are started."""
    port = settings.metrics_port if settings.metrics_enabled else 0
    if not port:
        yield None
        return
    directory = use_multiprocess_dir()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    registry.register(WorkerStates(connection, worker_names))
    app = _guarded(make_wsgi_app(registry), settings.metrics_token)
    try:
        server = make_server(settings.metrics_host, port, app, ThreadingWSGIServer,
                             handler_class=_Quiet)
    except OSError as exc:
        log.error("metrics: cannot serve on %s:%d (%s); running without /metrics",
                  settings.metrics_host, port, exc)
        server = None
    thread = None
    if server is not None:
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        log.info("metrics at http://%s:%d%s", settings.metrics_host, server.server_port,
                 METRICS_PATH)
    try:
        yield server.server_port if server is not None else None
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        shutil.rmtree(directory, ignore_errors=True)
