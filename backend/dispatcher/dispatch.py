"""Dispatch: STANDARD queue -> the RQ queue of each job's executor.

For every received batch: jobs for an executor nobody runs are failed (through the
report stream, which also dead-letters them), the rest are enqueued into RQ under their
own id (a duplicate is a no-op, see :mod:`backend.rqjobs`), and only then is
the batch acked; with the Redis Stream queue all of it is one transaction, one round
trip. A crash anywhere before the ack loses nothing: the queue delivers the messages
again after its visibility timeout.

The dispatcher asks the data service nothing: a message of a job that was cancelled or
finished meanwhile is enqueued like any other, and the worker that takes it does not
run it (its ``stop`` or ``done`` marker says so).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aioredis
from opentelemetry.trace import SpanKind

from backend import metrics, tracing
from backend.jobs import JobStatus
from backend.logs import job_context, job_fields
from backend.queues import Delivery, StandardQueue
from backend.reports import Report, about, append_report
from backend.rqjobs import BatchEnqueuer
from backend.settings import Settings

log = logging.getLogger("backend.dispatcher")

CRASH_EXIT_CODE = 3
DRAINED_KEY = "taskbroker:queue:{}:drained_at"
DRAINED_EVERY = 1.0  # seconds between two notes that the queue was seen drained


def drained_key(queue_name: str) -> str:
    """Redis key: when (ms since the epoch) a receive last found the queue empty."""
    return DRAINED_KEY.format(queue_name)


class Dispatcher:
    """Moves jobs from the STANDARD queue into RQ, at least once, never twice into RQ."""

    def __init__(self, settings: Settings, queue: StandardQueue, connection: redis.Redis,
                 streams: aioredis.Redis) -> None:
        self.settings = settings
        self.queue = queue
        self.redis = connection  # RQ builds its job objects on it
        self.streams = streams  # every write goes through this one (async)
        self.enqueuer = BatchEnqueuer(connection, settings.worker)
        self.executors = set(settings.worker.executor_names)
        self._acks_with_enqueue = queue.shares_redis(settings.redis.redis_url)
        self._next_drained = 0.0
        self._stopping = asyncio.Event()

    @property
    def wanted(self) -> int:
        """The most messages one receive asks for."""
        return min(self.settings.worker.dispatch_batch, self.queue.max_batch)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Receive and dispatch until :meth:`stop`."""
        if self.settings.queue.queue_create:
            await self.queue.ensure()
        log.info("dispatching from queue %s to RQ queues %s", self.queue.name,
                 ",".join(sorted(self.executors)))
        linger = self.settings.worker.batch_linger
        while not self._stopping.is_set():
            try:
                handled = await self.dispatch_once()
            except Exception:  # queue or Redis down: retry
                log.exception("dispatching failed; trying again in 1 s")
                await asyncio.sleep(1.0)
                continue
            if 0 < handled < self.wanted and linger:
                # Messages trickle in: let a few gather, so the next receive and its
                # transaction carry several (an idle queue is still read at once).
                await asyncio.sleep(linger)

    async def dispatch_once(self) -> int:
        """Receive one batch and dispatch it; returns how many messages were handled."""
        wanted = self.wanted
        received_at = time.time()
        deliveries = await self.queue.receive(wanted)
        if self.settings.worker.dispatcher_exit_after_receive and deliveries:
            log.warning("DISPATCHER_EXIT_AFTER_RECEIVE: exiting with %d messages unacked",
                        len(deliveries))
            os._exit(CRASH_EXIT_CODE)
        # Nothing more was waiting when this receive began: every message sent before it
        # has reached a dispatcher. The reconciler reads this (noted once a second).
        drained = len(deliveries) < wanted and time.monotonic() >= self._next_drained
        if drained:
            self._next_drained = time.monotonic() + DRAINED_EVERY
        if not deliveries:
            if drained:
                await self.streams.set(drained_key(self.queue.name), int(received_at * 1000))
            return 0
        started = time.perf_counter()
        known = [d for d in deliveries if d.message.executor in self.executors]
        unknown = [d for d in deliveries if d.message.executor not in self.executors]
        # One transaction: the RQ jobs, the failures of unknown executors, and (a stream
        # queue in this Redis) the ack. A full Redis refuses all of it, acks included.
        async with self.streams.pipeline(transaction=True) as pipe:
            positions = self.enqueuer.add(pipe, [d.message for d in known])
            for delivery in unknown:
                self._reject(pipe, delivery)
            if drained:
                pipe.set(drained_key(self.queue.name), int(received_at * 1000))
            if self._acks_with_enqueue:
                self.queue.add_ack(pipe, [d.receipt for d in deliveries])
            replies = await pipe.execute()
        if not self._acks_with_enqueue:
            await self.queue.ack_many(deliveries)
        added = [bool(replies[position]) for position in positions]
        for delivery, new in zip(known, added, strict=True):
            message = delivery.message
            with job_context(message.job_id, message.trace_id), tracing.span(
                    "dispatch", traceparent=message.traceparent, kind=SpanKind.CONSUMER,
                    attributes={"taskbroker.job_id": message.job_id,
                                "taskbroker.executor": message.executor}):
                if new:
                    log.info("job %s (%s) dispatched to RQ queue %s", message.job_id,
                             message.name, message.executor)
                else:
                    log.info("job %s is already in RQ (redelivered message); not enqueued "
                             "again", message.job_id)
        log.debug("dispatched %d messages (%d new in RQ, %d refused) in %.1f ms",
                  len(deliveries), sum(added), len(unknown),
                  (time.perf_counter() - started) * 1000)
        return len(deliveries)

    def _reject(self, pipe: Any, delivery: Delivery) -> None:
        """Fail a job for an executor nobody runs; the recorder dead-letters it."""
        message = delivery.message
        known = ", ".join(sorted(self.executors))
        reason = f"unknown executor {message.executor!r}; known executors: {known}"
        log.error("job %s: %s", message.job_id, reason,
                  extra=job_fields(message.job_id, message.trace_id))
        metrics.JOBS_FAILED.labels(message.name, message.executor).inc()
        report = Report(job_id=message.job_id, attempt=message.attempt, at=datetime.now(UTC),
                        status=JobStatus.FAILED, error=reason, dead_letter=message,
                        **about(message))
        append_report(pipe, report)
