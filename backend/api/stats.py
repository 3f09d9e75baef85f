"""``GET /api/v1/stats``: how the system is doing, for admins (the web app's overview).

Cheap whatever the number of jobs: the counts per minute, the recent run and wait times
and the latest failures are kept small in Redis as jobs finish (:mod:`backend.stats`);
queue depths are one call each; the workers come from RQ's registry; the data service is
asked once, for the owners of the (at most ten) failures shown.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.exceptions import PermissionDeniedException
from redis.exceptions import RedisError

from backend import stats
from backend.api.bodies import responses
from backend.api.dependencies import AppSettings, Client
from backend.api.security import Principal
from backend.errors import QueueError, TaskbrokerError
from backend.queues import StandardQueue
from backend.settings import Settings
from backend.store.client import DataServiceClient

log = logging.getLogger(__name__)


async def queue_depths(queue: StandardQueue, connection: Any,
                       settings: Settings) -> list[stats.QueueDepth]:
    """The STANDARD queue, each executor's RQ queue, the dead letters, the report stream
    (a depth that could not be read shows 0)."""
    found = await stats.queue_depths(queue, connection, settings.worker.executor_names)
    return [stats.QueueDepth(name=name, kind=kind, depth=depth or 0)
            for name, kind, depth in found]


async def _owners(client: DataServiceClient, failures: list[stats.Failure]) -> None:
    if not failures:
        return
    try:
        jobs = await client.get_jobs([failure.id for failure in failures])
    except TaskbrokerError as exc:  # the figures still answer; owners stay empty
        log.warning("stats: owners of the latest failures unknown: %s", exc)
        return
    owners = {job.id: job.user_id for job in jobs}
    for failure in failures:
        failure.user_id = owners.get(failure.id, "")


async def collect(connection: Any, queue: StandardQueue, client: DataServiceClient,
                  settings: Settings) -> stats.Stats:
    """The whole answer; raises :class:`QueueError` when Redis cannot be read."""
    now = datetime.now(UTC)
    try:
        minutes, queues, tasks, workers, failures = await asyncio.gather(
            stats.minutes(connection, now), queue_depths(queue, connection, settings),
            stats.task_times(connection), stats.workers(connection), stats.failures(connection))
    except RedisError as exc:
        raise QueueError(f"statistics unavailable: Redis did not answer ({exc})") from exc
    await _owners(client, failures)
    return stats.Stats(generated_at=now, minutes=minutes, queues=queues, tasks=tasks,
                       workers=workers, recent_failures=failures)


@get("/stats", summary="How the system is doing (admins)", tags=["stats"],
     responses=responses(401, 403, 503))
async def get_stats(request: Request[Principal, Any, Any], state: State, client: Client,
                    settings: AppSettings) -> stats.Stats:
    """Finished jobs per minute over the last hour (60 entries, oldest first), queue
    depths, recent run and queue-wait times per task (p50/p95 in ms), workers online,
    busy and idle, and the latest failures (newest first). Admins only (403 otherwise)."""
    if not request.user.admin:
        raise PermissionDeniedException("only admins may see the statistics")
    return await collect(state.redis, state.queue, client, settings)


STATS_ROUTES = [get_stats]
