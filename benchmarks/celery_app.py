"""The Celery app of the Celery baseline: the no-op ``echo`` task and a start gate.

    celery -A benchmarks.celery_app worker --pool prefork ...   (run by baselines.py)

Configured from the environment: ``BENCH_CELERY_BROKER`` and ``BENCH_CELERY_BACKEND``
(Redis URLs), and ``BENCH_GATE`` (``redis_url key``). With a gate, each pool process says
``ready`` once initialised, and the main process, once its consumer is set up but before
its event loop takes the first message, says ``ready`` and waits for ``key:go``: the
benchmark reads CPU times and releases the worker at the same moment, so Celery's start-up
stays out of the measured window. Results are stored (the Redis result backend), as a
caller waiting for them would need.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_process_init, worker_ready

from benchmarks.noop import echo

GATE_TIMEOUT = 120  # seconds the worker waits for the benchmark's go

app = Celery("bench", broker=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:1/1"),
             backend=os.environ.get("BENCH_CELERY_BACKEND", "redis://127.0.0.1:1/2"))
app.conf.update(broker_connection_retry_on_startup=True)
app.task(name="echo")(echo)


def _gate() -> tuple[redis.Redis, str] | None:
    gate = os.environ.get("BENCH_GATE", "")
    if not gate:
        return None
    url, key = gate.split()
    return redis.Redis.from_url(url), key


@worker_process_init.connect
def _pool_process_ready(**_: Any) -> None:
    if gate := _gate():
        connection, key = gate
        connection.rpush(f"{key}:ready", f"pool {os.getpid()}")
        connection.close()


@worker_ready.connect
def _hold_until_go(**_: Any) -> None:
    if gate := _gate():
        connection, key = gate
        connection.rpush(f"{key}:ready", f"main {os.getpid()}")
        if connection.blpop([f"{key}:go"], timeout=GATE_TIMEOUT) is None:
            raise SystemExit("celery_app: no go from the benchmark")
        connection.close()
