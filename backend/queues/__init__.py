"""The STANDARD queue, chosen by QUEUE_BACKEND."""

from __future__ import annotations

from backend.queues.base import MAX_MESSAGE_BYTES, DeadLetter, Delivery, StandardQueue
from backend.settings import Settings, get_settings

__all__ = ["MAX_MESSAGE_BYTES", "DeadLetter", "Delivery", "StandardQueue", "make_queue"]


def make_queue(settings: Settings | None = None) -> StandardQueue:
    """The STANDARD queue of the configured backend (not yet connected or created)."""
    settings = settings or get_settings()
    q = settings.queue
    common = dict(
        name=q.standard_queue_name,
        dead_letter_name=q.dead_letter_name,
        visibility_timeout=q.queue_visibility_timeout,
        max_receives=q.queue_max_receives,
        wait_seconds=q.queue_wait_seconds,
    )
    if q.queue_backend == "sqs":
        from backend.queues.sqs import SqsQueue

        return SqsQueue(settings=q, **common)
    from backend.queues.redis_stream import RedisStreamQueue

    return RedisStreamQueue(redis_url=settings.redis.redis_url, **common)
