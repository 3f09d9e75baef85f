"""How long RQ keeps ended jobs, said on the page, and counts that match the lists.

RQ keeps a finished job RQ_RESULT_TTL seconds (short: each costs about 7 KB of Redis while
kept) and a failed or cancelled one RQ_FAILURE_TTL; the data service keeps every job and
its result. The registry pages say so, so an empty finished list is not taken for lost
work.

RQ's registries hold each job id until the job's expiry (its score) and drop it only in
RQ's maintenance, every ten minutes; rq-dashboard counts them without that cleanup but
lists only jobs whose hash still exists. Its finished count said 22 over an empty list:
the ids of expired jobs are dropped here before rq-dashboard counts or lists them.
"""

from __future__ import annotations

import redis
from flask import current_app
from rq.queue import Queue
from rq.registry import CanceledJobRegistry, FailedJobRegistry, FinishedJobRegistry
from rq.utils import current_timestamp

from backend.dashboard.templates import Edit

ENDED = (FinishedJobRegistry, FailedJobRegistry, CanceledJobRegistry)

NOTICE = """
    {% if registry_name in ('finished', 'failed', 'canceled') %}
    <p class="intro" id="kept-notice">RQ keeps a finished job here for
    <code>RQ_RESULT_TTL</code> = {{ rq_result_ttl }} s, a failed or cancelled one for
    <code>RQ_FAILURE_TTL</code> = {{ rq_failure_ttl }} s. Each costs about 7 KB of Redis
    while it is kept, so finished jobs are kept briefly. Every job, its result and its
    history stay in the data service (<code>JOB_RETENTION_DAYS</code>): the web app,
    <code>taskbroker show &lt;job-id&gt;</code> or <code>GET /api/v1/jobs/&lt;job-id&gt;</code>.</p>
    {% endif %}"""
INTRO_END = ("This list below contains all the queued jobs on queue "
             "<strong>{{ queue.name }}</strong>.</p>")
TEMPLATE_EDITS = {"rq_dashboard/jobs.html": [Edit(INTRO_END, INTRO_END + NOTICE, 1)]}


def drop_expired(connection: redis.Redis) -> None:
    """Remove the ids of expired jobs from every queue's finished, failed and cancelled
    registry (what RQ's maintenance does, and rq-dashboard's counts skip)."""
    names = [key.decode().removeprefix(Queue.redis_queue_namespace_prefix)
             for key in connection.smembers(Queue.redis_queues_keys)]
    now = current_timestamp()
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            for registry in ENDED:
                pipe.zremrangebyscore(registry.key_template.format(name), 0, now)
        pipe.execute()


def before_request() -> None:
    drop_expired(current_app.redis_conn)  # type: ignore[attr-defined]
