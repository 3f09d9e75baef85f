"""What a worker process talks to: the Redis of the RQ queues and the report stream.

One :class:`WorkerConnections` per process, made on first use: worker processes are
forked from the worker executor, and sockets must not be shared across a fork, so the
object remembers the pid that made it and is rebuilt in a child. Nothing here talks to
the data service: workers report through Redis only.
"""

from __future__ import annotations

import os
from functools import cached_property

import redis

from backend.settings import Settings, get_settings
from backend.workers.report_writer import ReportWriter

# Reports must fail fast when Redis is away (the end report is then sent again).
REPORT_CONNECT_TIMEOUT = 2.0
REPORT_COMMAND_TIMEOUT = 5.0


class WorkerConnections:
    """Settings, RQ's Redis connection and the report writer of one process."""

    def __init__(self, settings: Settings, *, connection: redis.Redis | None = None) -> None:
        self.settings = settings
        self.pid = os.getpid()
        if connection is not None:
            self.redis = connection

    @cached_property
    def redis(self) -> redis.Redis:
        # RQ stores pickled bytes: no decode_responses here.
        return redis.Redis.from_url(self.settings.redis.redis_url)

    @cached_property
    def writer(self) -> ReportWriter:
        connection = redis.Redis.from_url(
            self.settings.redis.redis_url, socket_connect_timeout=REPORT_CONNECT_TIMEOUT,
            socket_timeout=REPORT_COMMAND_TIMEOUT)
        return ReportWriter(connection, done_ttl=self.settings.worker.done_ttl)

    def close(self) -> None:
        """Close what this process opened."""
        writer = self.__dict__.pop("writer", None)
        if writer is not None:
            writer.redis.close()
        connection = self.__dict__.pop("redis", None)
        if connection is not None:
            connection.close()


_connections: WorkerConnections | None = None


def get_connections() -> WorkerConnections:
    """This process's connections (rebuilt after a fork)."""
    global _connections
    if _connections is None or _connections.pid != os.getpid():
        _connections = WorkerConnections(get_settings())
    return _connections


def set_connections(connections: WorkerConnections | None) -> None:
    """Use ``connections`` in this process (tests point them at their own Redis)."""
    global _connections
    _connections = connections
