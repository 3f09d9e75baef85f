"""F14: a task's exception text is the user's (the ``fail`` task raises params.message),
and it reaches the worker's logs. In text format (LOG_FORMAT=text) a newline in it must
not start a line of its own that reads like a record of ours: one record, one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bson import ObjectId

from backend.jobs import QueueMessage
from backend.rqjobs import enqueue
from tests.integration.workers.conftest import statuses
from tests.services import python_module

FORGED = "2026-12-07 12:00:00,000 INFO MainProcess[1] backend.api: forged line"
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
MESSAGE = f"boom\n{FORGED}\r{FORGED}\u2028{FORGED}"


def _worker_log(connections, redis_url: str, log_dir: Path, processes, log_format: str,
                permanent: bool) -> str:
    """Run a real worker process on a ``fail`` job that raises :data:`MESSAGE` (for good,
    or on both of its two attempts); its log once it has stopped."""
    job_id = str(ObjectId())
    message = QueueMessage(job_id=job_id, name="fail",
                           params={"message": MESSAGE, "permanent": permanent})
    assert enqueue(connections.redis, message, connections.settings.worker)
    workers = python_module(f"workers-logs-{job_id}", "backend.workers", log_dir,
                            {"REDIS_URL": redis_url, "LOG_FORMAT": log_format,
                             "LOG_LEVEL": "INFO", "METRICS_PORT": "0", "MAX_ATTEMPTS": "2",
                             "RETRY_BACKOFF_BASE": "0", "RETRY_BACKOFF_MAX": "0",
                             "EXECUTORS": "standard"},
                            "--workers", "1", "--queues", "standard").start()
    processes.append(workers)
    workers.wait_until(lambda: ("failed", 1 if permanent else 2)
                       in statuses(connections.redis, job_id), timeout=60)
    workers.stop()  # gracefully: the worker ends its handling of the job (and logs) first
    return workers.log_path.read_text()


@pytest.mark.parametrize("permanent", [True, False], ids=["fails-for-good", "retried"])
def test_a_task_exception_cannot_forge_lines_in_text_logs(connections, rq_redis_url,
                                                          log_dir: Path, processes,
                                                          permanent):
    logged = _worker_log(connections, rq_redis_url, log_dir, processes, "text", permanent)
    lines = logged.splitlines()  # also splits at \r and U+2028, as log viewers may
    assert not [line for line in lines if line.startswith(FORGED)], logged
    # One record, one line: every line is a record of its own, traceback included.
    assert [line for line in lines if not RECORD.match(line)] == [], logged
    assert f"boom\\n{FORGED}\\r{FORGED}\\u2028{FORGED}" in logged


def test_json_logs_keep_each_record_on_one_line_too(connections, rq_redis_url,
                                                    log_dir: Path, processes):
    logged = _worker_log(connections, rq_redis_url, log_dir, processes, "json", True)
    records = [json.loads(line) for line in logged.splitlines()]  # each line whole JSON
    assert any(MESSAGE in record["message"] for record in records), logged  # unchanged
