"""The RQ keys the other processes read are the keys RQ itself writes."""

from __future__ import annotations

import json

import fakeredis
from rq import Queue, Worker
from rq.command import send_command
from rq.job import Job as RQJob
from rq.worker_registration import register

from backend.rqjobs import WORKERS_KEY, command_channel, job_key, queue_key, rq_queue, worker_key


def test_job_queue_and_worker_keys_are_rqs_own() -> None:
    connection = fakeredis.FakeRedis()
    job_id = "0123456789abcdef01234567"
    assert job_key(job_id) == RQJob(job_id, connection=connection).key
    assert queue_key("standard") == rq_queue(connection, "standard").key
    worker = Worker([Queue("standard", connection=connection)], name="host.1.w0",
                    connection=connection)
    assert worker_key("host.1.w0") == worker.key
    register(worker)
    assert connection.smembers(WORKERS_KEY) == {worker.key.encode()}
    pubsub = connection.pubsub()
    pubsub.subscribe(command_channel("host.1.w0"))
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    send_command(connection, "host.1.w0", "stop-job", job_id=job_id)
    message = pubsub.get_message(timeout=1)
    assert message is not None and json.loads(message["data"])["job_id"] == job_id
