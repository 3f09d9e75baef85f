"""The dispatcher: STANDARD queue -> the RQ queue of each job's executor.

``python -m backend.workers.dispatcher``. For every received batch: dead-letter jobs for
an executor nobody runs, enqueue the rest into RQ under their own id (a duplicate is a
no-op, see :mod:`backend.workers.enqueue`), and only then ack. A crash anywhere before
the ack loses nothing: the queue delivers the message again after its visibility timeout.
SIGTERM/SIGINT: stop receiving, finish the current batch, exit 0.

The dispatcher does not ask the data service about each job: a message of a job that
was cancelled, finished or deleted meanwhile is enqueued like any other, and the worker
that takes it does not run it (the data service refuses to mark it ``running``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

import redis

from backend.client import DataServiceClient
from backend.errors import JobNotFoundError, TransitionError
from backend.jobs import JobStatus, UpdateJob
from backend.queues import Delivery, StandardQueue, make_queue
from backend.settings import Settings, get_settings
from backend.workers.enqueue import enqueue
from backend.workers.logs import configure_logging

log = logging.getLogger("backend.workers.dispatcher")

CRASH_EXIT_CODE = 3


class Dispatcher:
    """Moves jobs from the STANDARD queue into RQ, at least once, never twice into RQ."""

    def __init__(self, settings: Settings, queue: StandardQueue, client: DataServiceClient,
                 connection: redis.Redis) -> None:
        self.settings = settings
        self.queue = queue
        self.client = client
        self.redis = connection
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
            except Exception:  # queue, Redis or data service down: retry
                log.exception("dispatching failed; trying again in 1 s")
                await asyncio.sleep(1.0)

    async def dispatch_once(self) -> int:
        """Receive one batch and dispatch it; returns how many messages were handled."""
        deliveries = await self.queue.receive(self.settings.worker.dispatch_batch)
        if not deliveries:
            return 0
        if self.settings.worker.dispatcher_exit_after_receive:
            log.warning("DISPATCHER_EXIT_AFTER_RECEIVE: exiting with %d messages unacked",
                        len(deliveries))
            os._exit(CRASH_EXIT_CODE)
        started = time.perf_counter()
        known = []
        for delivery in deliveries:
            if delivery.message.executor in self.executors:
                known.append(delivery)
            else:
                await self._reject(delivery)
        added = await asyncio.to_thread(self._enqueue_all, known)
        await asyncio.gather(*(self.queue.ack(delivery) for delivery in known))
        log.info("dispatched %d of %d messages (%d new in RQ) in %.1f ms", len(known),
                 len(deliveries), added, (time.perf_counter() - started) * 1000)
        return len(deliveries)

    def _enqueue_all(self, deliveries: list[Delivery]) -> int:
        added = 0
        for delivery in deliveries:
            message = delivery.message
            if enqueue(self.redis, message, self.settings.worker):
                added += 1
                log.info("job %s -> RQ queue %s", message.job_id, message.executor)
            else:
                log.info("job %s is already in RQ (redelivered message); not enqueued again",
                         message.job_id)
        return added

    async def _reject(self, delivery: Delivery) -> None:
        message = delivery.message
        reason = (f"unknown executor {message.executor!r}; known executors: "
                  f"{', '.join(sorted(self.executors))}")
        try:
            await self.client.update_job(message.job_id,
                                         UpdateJob(status=JobStatus.FAILED, error=reason))
        except JobNotFoundError:
            log.info("job %s skipped: it was deleted", message.job_id)
            await self.queue.ack(delivery)
            return
        except TransitionError as exc:
            # Already failed may be this very message's doing, its dead-lettering cut short
            # by a crash: dead-letter it. Cancelled or succeeded: nothing left to do.
            if exc.current != JobStatus.FAILED:
                log.info("job %s skipped: it is already %s", message.job_id, exc.current)
                await self.queue.ack(delivery)
                return
        log.error("job %s: %s", message.job_id, reason)
        await self.queue.dead_letter(delivery, reason)


async def serve(settings: Settings) -> None:
    """Run a dispatcher until SIGTERM or SIGINT."""
    api = settings.api
    queue = make_queue(settings)
    client = DataServiceClient(api.data_service_url, timeout=api.data_service_timeout,
                               deadline=api.data_service_deadline)
    connection = redis.Redis.from_url(settings.redis.redis_url)
    dispatcher = Dispatcher(settings, queue, client, connection)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, dispatcher.stop)
    try:
        await dispatcher.run()
    finally:
        log.info("dispatcher stopping")
        await queue.close()
        await client.stop()
        connection.close()


def main() -> None:
    settings = get_settings()
    configure_logging(settings.local.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
