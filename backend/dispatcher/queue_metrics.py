"""The dispatcher's ``/metrics`` (DISPATCHER_METRICS_PORT): queue depths, measured when
Prometheus scrapes, and the process's own counters (dead letters, its data-service calls).

Depths are cheap reads: the STANDARD queue's :meth:`depth` and its dead-letter queue's
(XLEN, or one SQS attribute call each), the LLEN of each executor's RQ queue and the
XLEN of the report stream, all at scrape time, so nothing polls between scrapes. The
endpoint is served by aiohttp on the dispatcher's own event loop.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from backend import stats
from backend.metrics import METRICS_PATH, QUEUE_DEPTH, authorized, unauthorized_body
from backend.queues import StandardQueue
from backend.settings import Settings

log = logging.getLogger(__name__)

MEASURE_TIMEOUT = 5.0


class DispatcherMetrics:
    """The endpoint; :meth:`start` and :meth:`stop` follow the dispatcher's life."""

    def __init__(self, settings: Settings, queue: StandardQueue,
                 connection: aioredis.Redis) -> None:
        self.settings = settings
        self.queue = queue
        self.redis = connection
        self.executors = settings.worker.executor_names
        self._runner: web.AppRunner | None = None

    async def measure(self) -> None:
        """Set the depth gauges (a queue that cannot be measured keeps its last value)."""
        for name, kind, depth in await stats.queue_depths(self.queue, self.redis,
                                                          self.executors):
            if depth is not None:
                QUEUE_DEPTH.labels(name, kind).set(depth)

    async def handle(self, request: web.Request) -> web.Response:
        token = self.settings.observability.metrics_token
        if not authorized(request.headers.get("Authorization"), token):
            return web.json_response(unauthorized_body(), status=401)
        try:
            await asyncio.wait_for(self.measure(), MEASURE_TIMEOUT)
        except TimeoutError:
            log.warning("metrics: queue depths took over %.0f s; served as they were",
                        MEASURE_TIMEOUT)
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        """Serve on METRICS_HOST:DISPATCHER_METRICS_PORT (0: not at all). A port that is
        taken is logged, never fatal: dispatching matters more than its metrics."""
        observability = self.settings.observability
        port = observability.dispatcher_metrics_port if observability.metrics_enabled else 0
        if not port:
            return
        app = web.Application()
        app.router.add_get(METRICS_PATH, self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, observability.metrics_host, port).start()
        except OSError as exc:
            log.error("metrics: cannot serve on %s:%d (%s); running without /metrics",
                      observability.metrics_host, port, exc)
            await runner.cleanup()
            return
        self._runner = runner
        log.info("metrics at http://%s:%d%s", observability.metrics_host, port, METRICS_PATH)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
