"""Dispatch: STANDARD queue -> the RQ queue of each job's executor.

For every received batch: jobs for an executor nobody runs are failed (through the
report stream, which also dead-letters them), the rest are enqueued into RQ under their
own id in one round trip (a duplicate is a no-op, see :mod:`backend.workers.enqueue`),
and only then is the batch acked. A crash anywhere before the ack loses nothing: the
queue delivers the messages again after its visibility timeout.

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

import redis

from backend.jobs import JobStatus
from backend.queues import Delivery, StandardQueue
from backend.reports import REPORT_FIELD, REPORT_STREAM, Report, encode_report
from backend.settings import Settings
from backend.workers.enqueue import BatchEnqueuer

log = logging.getLogger("backend.workers.dispatcher")

CRASH_EXIT_CODE = 3
DRAINED_KEY = "taskbroker:queue:{}:drained_at"


def drained_key(queue_name: str) -> str:
    """Redis key: when (ms since the epoch) a receive last found the queue empty."""
    return DRAINED_KEY.format(queue_name)


class Dispatcher:
    """Moves jobs from the STANDARD queue into RQ, at least once, never twice into RQ."""

    def __init__(self, settings: Settings, queue: StandardQueue,
                 connection: redis.Redis) -> None:
        self.settings = settings
        self.queue = queue
        self.redis = connection
        self.enqueuer = BatchEnqueuer(connection, settings.worker)
        self.executors = set(settings.worker.executor_names)
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Receive and dispatch until :meth:`stop`."""
        if self.settings.queue.queue_create:
            await self.queue.ensure()
        log.info("dispatching from queue %s to RQ queues %s", self.queue.name,
                 ",".join(sorted(self.executors)))
        while not self._stopping.is_set():
            try:
                await self.dispatch_once()
            except Exception:  # queue or Redis down: retry
                log.exception("dispatching failed; trying again in 1 s")
                await asyncio.sleep(1.0)

    async def dispatch_once(self) -> int:
        """Receive one batch and dispatch it; returns how many messages were handled."""
        wanted = self.settings.worker.dispatch_batch
        received_at = time.time()
        deliveries = await self.queue.receive(wanted)
        if self.settings.worker.dispatcher_exit_after_receive and deliveries:
            log.warning("DISPATCHER_EXIT_AFTER_RECEIVE: exiting with %d messages unacked",
                        len(deliveries))
            os._exit(CRASH_EXIT_CODE)
        if len(deliveries) < wanted:
            # Nothing more was waiting when this receive began: every message sent before
            # it has reached a dispatcher. The reconciler reads this.
            await asyncio.to_thread(self.redis.set, drained_key(self.queue.name),
                                    int(received_at * 1000))
        if not deliveries:
            return 0
        started = time.perf_counter()
        known = [d for d in deliveries if d.message.executor in self.executors]
        unknown = [d for d in deliveries if d.message.executor not in self.executors]
        added = await asyncio.to_thread(self._enqueue_and_reject, known, unknown)
        await self.queue.ack_many(deliveries)
        log.debug("dispatched %d messages (%d new in RQ, %d refused) in %.1f ms",
                  len(deliveries), added, len(unknown), (time.perf_counter() - started) * 1000)
        return len(deliveries)

    def _enqueue_and_reject(self, known: list[Delivery], unknown: list[Delivery]) -> int:
        if unknown:
            self._reject(unknown)
        added = self.enqueuer.enqueue([delivery.message for delivery in known])
        for delivery, new in zip(known, added, strict=True):
            if not new:
                log.info("job %s is already in RQ (redelivered message); not enqueued again",
                         delivery.message.job_id)
        return sum(added)

    def _reject(self, deliveries: list[Delivery]) -> None:
        """Fail jobs for an executor nobody runs; the recorder dead-letters them."""
        known = ", ".join(sorted(self.executors))
        with self.redis.pipeline(transaction=False) as pipe:
            for delivery in deliveries:
                message = delivery.message
                reason = f"unknown executor {message.executor!r}; known executors: {known}"
                log.error("job %s: %s", message.job_id, reason)
                report = Report(job_id=message.job_id, attempt=message.attempt,
                                at=datetime.now(UTC), status=JobStatus.FAILED, error=reason,
                                dead_letter=message)
                pipe.xadd(REPORT_STREAM, {REPORT_FIELD: encode_report(report)})
            pipe.execute()
