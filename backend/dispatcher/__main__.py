"""``python -m backend.dispatcher``: dispatch, record, reconcile and deliver
webhooks until stopped.

SIGTERM/SIGINT: stop receiving, finish the batch in hand (dispatched and acked, or
recorded and acked), exit 0. What is left stays on the queue or the report stream.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import redis
import redis.asyncio as aioredis
import uvloop

from backend.dispatcher.dispatch import Dispatcher
from backend.dispatcher.queue_metrics import DispatcherMetrics
from backend.dispatcher.reconciler import Reconciler
from backend.dispatcher.recorder import Recorder, consumer_name
from backend.dispatcher.webhook_sender import WebhookSender
from backend.logs import configure_process
from backend.metrics import set_enabled as set_metrics_enabled
from backend.queues import make_queue
from backend.settings import Settings, get_settings
from backend.store.client import DataServiceClient
from backend.tracing import configure_tracing, shutdown_tracing

log = logging.getLogger("backend.dispatcher")


async def serve(settings: Settings) -> None:
    """Run the dispatcher, the recorder and the reconciler until SIGTERM or SIGINT."""
    api = settings.api
    url = settings.redis.redis_url
    queue = make_queue(settings)
    client = DataServiceClient.from_settings(api)
    connection = redis.Redis.from_url(url)
    streams = aioredis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0)
    name = consumer_name()
    dispatcher = Dispatcher(settings, queue, connection, streams)
    recorder = Recorder(streams, client, queue, batch=settings.worker.recorder_batch,
                        consumer=name, linger=settings.worker.batch_linger)
    reconciler = Reconciler(settings, streams, client, queue, name=name)
    sender = WebhookSender(settings.webhooks, streams, client)
    parts = (dispatcher, recorder, reconciler, sender)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: [part.stop() for part in parts])
    monitor = DispatcherMetrics(settings, queue, streams)
    await monitor.start()
    try:
        await asyncio.gather(dispatcher.run(), recorder.run(), reconciler.run(), sender.run())
    finally:
        log.info("dispatcher stopping")
        await monitor.stop()
        await queue.close()
        await client.stop()
        await streams.aclose()
        connection.close()


def main() -> None:
    settings = get_settings()
    configure_process("dispatcher", settings)
    configure_tracing(settings.observability, "dispatcher")
    set_metrics_enabled(settings.observability.metrics_enabled)
    try:
        # uvloop: the dispatcher's work is small reads and writes on many sockets, where
        # the event loop's own cost shows (benchmarks/pipeline.py).
        uvloop.run(serve(settings))
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
