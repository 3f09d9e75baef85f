"""F5: an RQ job hash is more than its function. Someone who can write to Redis can add
callback names (RQ imports and calls them), RQ webhooks (an HTTP request from the
worker's network position) and fields RQ acts on (retries, dependencies) to a job, ours
or a planted one. A real TaskWorker on a real Redis (burst mode) must refuse such a job
before RQ reads any of it: nothing imported, called or requested, the refusal logged once
with the job id, and the next job run as usual.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
from bson import ObjectId
from rq import Callback
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import now as rq_now
from rq.utils import utcformat

from backend.jobs import QueueMessage
from backend.rqjobs import RUN_JOB, enqueue, rq_queue
from backend.workers.worker import TaskWorker
from tests.integration.workers import rq_gadgets
from tests.integration.workers.conftest import reports, statuses

pytestmark = pytest.mark.usefixtures("keep_signal_handlers")

RECORD = "tests.integration.workers.rq_gadgets.record"
IMPORT_GADGET = "tests.integration.workers.rq_import_gadget"


class Listener:
    """An HTTP server on a free 127.0.0.1 port that notes every request it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _note(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                requests.append((self.command, self.path, self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            do_GET = do_POST = _note

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def gadgets(tmp_path: Path) -> Iterator[Path]:
    """The gadgets' traces start empty, the import gadget not imported yet."""
    markers = tmp_path / "markers"
    markers.mkdir()
    sys.modules.pop(IMPORT_GADGET, None)
    rq_gadgets.MARKERS = markers
    rq_gadgets.CALLED.clear()
    yield markers
    rq_gadgets.MARKERS = None
    rq_gadgets.CALLED.clear()
    sys.modules.pop(IMPORT_GADGET, None)


def _message(name: str, params: dict[str, Any] | None = None) -> tuple[str, str]:
    """The args of an RQ job of the real runner: (job id, queue message)."""
    job_id = str(ObjectId())
    message = QueueMessage(job_id=job_id, name=name, params=params)
    return job_id, msgspec.json.encode(message).decode()


def _plant(connection: Any, job_id: str, func: str, args: tuple[Any, ...],
           **fields: Any) -> None:
    """Write an RQ job hash as an attacker with Redis access would (HSET, RPUSH)."""
    data = zlib.compress(json.dumps([func, None, list(args), {}]).encode())
    stamp = utcformat(rq_now())
    mapping: dict[str, Any] = {"data": data, "status": "queued", "origin": "standard",
                               "created_at": stamp, "enqueued_at": stamp, "timeout": 60,
                               "description": "planted"}
    mapping.update({key: json.dumps(value) if isinstance(value, (list, dict)) else value
                    for key, value in fields.items()})
    connection.hset(f"rq:job:{job_id}", mapping=mapping)
    connection.rpush("rq:queue:standard", job_id)


def _normal_job(connections: Any) -> str:
    job_id = str(ObjectId())
    message = QueueMessage(job_id=job_id, name="echo", params={"after": "the attack"})
    assert enqueue(connections.redis, message, connections.settings.worker)
    return job_id


def _work(connections: Any) -> TaskWorker:
    worker = TaskWorker(["standard"], connection=connections.redis,
                        heartbeat=connections.settings.worker.worker_heartbeat)
    worker.work(burst=True)
    return worker


def _assert_nothing_fired(listener: Listener, markers: Path) -> None:
    assert listener.requests == []
    assert rq_gadgets.CALLED == []
    assert list(markers.iterdir()) == []
    assert IMPORT_GADGET not in sys.modules


def _webhook(listener: Listener, status: str, method: str = "POST") -> dict[str, Any]:
    return {"url": f"{listener.url}/latest/meta-data/{status}", "job_status": status,
            "method": method, "headers": {"Metadata-Flavor": "Google"}}


# Each attack: the function the planted job names (the real runner, with a real message,
# or another), and the hash fields it adds.
ATTACKS = {
    "failure-callback-and-webhook-on-a-refused-function": lambda listener: (
        "os.getpid", None,
        {"failure_callback_name": RECORD, "webhooks": [_webhook(listener, "failed")]}),
    "success-callback-and-webhook-on-the-real-runner": lambda listener: (
        RUN_JOB, ("echo", {"x": 1}),
        {"success_callback_name": RECORD,
         "webhooks": [_webhook(listener, "finished", "GET")]}),
    "failure-callback-whose-import-has-an-effect": lambda listener: (
        RUN_JOB, ("fail", {"permanent": True}),
        {"failure_callback_name": f"{IMPORT_GADGET}.record"}),
    "a-function-whose-module-import-has-an-effect": lambda listener: (
        f"{IMPORT_GADGET}.record", None, {}),
    "stopped-callback": lambda listener: (
        RUN_JOB, ("echo", {}), {"stopped_callback_name": RECORD}),
    "retries-rq-would-act-on": lambda listener: (
        RUN_JOB, ("echo", {}), {"retries_left": 5, "retry_intervals": [0]}),
    "a-dependency": lambda listener: (
        RUN_JOB, ("echo", {}), {"dependency_ids": ["0" * 24], "dependency_id": "0" * 24}),
    "a-field-rq-does-not-know": lambda listener: (
        RUN_JOB, ("echo", {}), {"x-anything": "1"}),
    "meta-beyond-the-attempt": lambda listener: (
        RUN_JOB, ("echo", {}), {"meta": {"attempt": 1, "extra": "x"}}),
    "a-job-rq-cannot-read": lambda listener: (
        RUN_JOB, ("echo", {}), {"timeout": "not a number"}),
}


@pytest.mark.parametrize("behind", [False, True],
                         ids=["dequeued-by-rq", "taken-with-the-end-of-a-job"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_an_rq_job_hash_with_anything_workers_never_write_is_refused_before_rq_reads_it(
        connections, listener, gadgets, caplog, attack, behind):
    before = _normal_job(connections) if behind else None
    func, task, fields = ATTACKS[attack](listener)
    if func == RUN_JOB:
        job_id, message = _message(*task)
        args: tuple[Any, ...] = (job_id, message)
    else:
        job_id, args = str(ObjectId()), ()
    _plant(connections.redis, job_id, func, args, **fields)
    normal = _normal_job(connections)  # queued behind it

    with caplog.at_level(logging.INFO):
        _work(connections)

    _assert_nothing_fired(listener, gadgets)
    assert reports(connections.redis, job_id) == []  # the task never ran
    assert connections.redis.hget(f"rq:job:{job_id}", "status") == b"failed"
    assert job_id in rq_queue(connections.redis, "standard").failed_job_registry
    said = [record for record in caplog.records
            if record.levelno >= logging.WARNING and job_id in record.getMessage()]
    assert len(said) == 1, [record.getMessage() for record in said]
    assert "refused" in said[0].getMessage()
    assert statuses(connections.redis, normal) == [("succeeded", 1)]
    if before is not None:
        assert statuses(connections.redis, before) == [("succeeded", 1)]


def test_callbacks_set_through_rqs_own_api_are_refused_too(connections, listener, gadgets):
    job_id, message = _message("echo", {"x": 1})
    queue = rq_queue(connections.redis, "standard")
    queue.enqueue_call(RUN_JOB, args=(job_id, message), job_id=job_id,
                       on_success=Callback(RECORD), on_failure=Callback(RECORD),
                       on_stopped=Callback(f"{IMPORT_GADGET}.record"))
    normal = _normal_job(connections)

    _work(connections)

    _assert_nothing_fired(listener, gadgets)
    assert reports(connections.redis, job_id) == []
    assert statuses(connections.redis, normal) == [("succeeded", 1)]


def test_an_abandoned_planted_job_fires_nothing_when_rqs_registry_cleanup_finds_it(
        connections, listener, gadgets):
    # RQ's registry cleanup (run by every worker) calls the failure callback of each job
    # whose entry in the started registry expired, before our recovery sees it.
    job_id, message = _message("echo", {})
    _plant(connections.redis, job_id, RUN_JOB, (job_id, message),
           failure_callback_name=f"{IMPORT_GADGET}.record",
           webhooks=[_webhook(listener, "failed")])
    connections.redis.lrem("rq:queue:standard", 1, job_id)
    started = StartedJobRegistry("standard", connection=connections.redis,
                                 serializer=JSONSerializer)
    connections.redis.zadd(started.key, {f"{job_id}:planted": 1})
    normal = _normal_job(connections)

    _work(connections)

    _assert_nothing_fired(listener, gadgets)
    assert statuses(connections.redis, normal) == [("succeeded", 1)]


def test_a_failed_job_requeued_from_rq_dashboard_is_not_refused(connections, caplog):
    # What RQ writes on the way (exc_info, a failed status, a requeue) is ours.
    job_id = str(ObjectId())
    message = QueueMessage(job_id=job_id, name="fail", params={"permanent": True})
    assert enqueue(connections.redis, message, connections.settings.worker)
    _work(connections)
    queue = rq_queue(connections.redis, "standard")
    assert job_id in queue.failed_job_registry
    queue.failed_job_registry.requeue(job_id)

    with caplog.at_level(logging.INFO):
        _work(connections)

    assert not [record for record in caplog.records if "refused" in record.getMessage()]
    # It ended already: the worker sees its done marker and skips it, as RQ's finished job.
    assert connections.redis.hget(f"rq:job:{job_id}", "status") == b"finished"
