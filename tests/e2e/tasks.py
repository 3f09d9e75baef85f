"""Tasks of the fault tests (loaded through TASK_MODULES): each run leaves a trace in
Redis, so a test can tell how many times a job's task really ran."""

from __future__ import annotations

from functools import cache

import redis

from backend.settings import get_settings
from backend.tasks import TaskContext, task

RAN_KEY = "test:ran:{}"


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis.redis_url)


@task("count")
def count(ctx: TaskContext) -> dict[str, float]:
    """Note one more run of this job, then work for params.seconds (reporting progress)."""
    _redis().incr(RAN_KEY.format(ctx.job_id))
    seconds = float(ctx.params.get("seconds", 0.1))
    steps = max(1, int(seconds / 0.1))
    for step in range(steps):
        ctx.sleep(seconds / steps)
        ctx.progress(100 * (step + 1) / steps)
    return {"seconds": seconds}


def runs(connection: redis.Redis, job_ids: list[str]) -> dict[str, int]:
    """How many times each job's task started."""
    values = connection.mget([RAN_KEY.format(job_id) for job_id in job_ids]) if job_ids else []
    return {job_id: int(value or 0) for job_id, value in zip(job_ids, values, strict=True)}
