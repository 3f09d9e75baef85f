"""What the dispatcher's helpers and every worker process talk to.

One :class:`WorkerServices` per process, made on first use: a worker process is forked
from the worker executor, and sockets must not be shared across a fork, so the object
remembers the pid that made it and is rebuilt in a child.
"""

from __future__ import annotations

import asyncio
import logging
import os
from functools import cached_property

import redis

from backend.client import SyncDataServiceClient
from backend.jobs import QueueMessage
from backend.queues import StandardQueue, make_queue
from backend.settings import Settings, get_settings

log = logging.getLogger(__name__)


class DeadLetterSender:
    """Puts messages on the dead-letter queue from synchronous code (the queue API is async)."""

    def __init__(self, queue: StandardQueue, *, ensure: bool = True) -> None:
        self._queue = queue
        self._ensure = ensure
        self._loop = asyncio.new_event_loop()

    def send(self, message: QueueMessage, reason: str) -> None:
        if self._ensure:
            self._loop.run_until_complete(self._queue.ensure())
            self._ensure = False
        self._loop.run_until_complete(self._queue.send_dead_letter(message, reason))

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._queue.close())
        finally:
            self._loop.close()


class WorkerServices:
    """Settings, the Redis of the RQ queues, the data service client and the dead-letter queue."""

    def __init__(self, settings: Settings, *, redis_client: redis.Redis | None = None,
                 client: SyncDataServiceClient | None = None,
                 dead_letters: DeadLetterSender | None = None) -> None:
        self.settings = settings
        self.pid = os.getpid()
        if redis_client is not None:
            self.redis = redis_client
        if client is not None:
            self.client = client
        if dead_letters is not None:
            self.dead_letters = dead_letters

    @cached_property
    def redis(self) -> redis.Redis:
        # RQ stores pickled bytes: no decode_responses here.
        return redis.Redis.from_url(self.settings.redis.redis_url)

    @cached_property
    def client(self) -> SyncDataServiceClient:
        api = self.settings.api
        return SyncDataServiceClient(api.data_service_url, timeout=api.data_service_timeout,
                                     deadline=api.data_service_deadline)

    @cached_property
    def dead_letters(self) -> DeadLetterSender:
        return DeadLetterSender(make_queue(self.settings), ensure=self.settings.queue.queue_create)

    def close(self) -> None:
        """Close what was opened (only what this process made)."""
        for name in ("client", "dead_letters"):
            resource = self.__dict__.pop(name, None)
            if resource is not None:
                try:
                    resource.close()
                except Exception:  # closing is best effort
                    log.debug("closing %s failed", name, exc_info=True)
        connection = self.__dict__.pop("redis", None)
        if connection is not None:
            connection.close()


_services: WorkerServices | None = None


def get_services() -> WorkerServices:
    """This process's services (rebuilt after a fork)."""
    global _services
    if _services is None or _services.pid != os.getpid():
        _services = WorkerServices(get_settings())
    return _services


def set_services(services: WorkerServices | None) -> None:
    """Use ``services`` in this process (tests inject fakes here)."""
    global _services
    _services = services
