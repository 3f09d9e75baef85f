"""F3: whoever can write Redis plants pickled data in an RQ job, and a fake busy worker
whose current job it is; no page or action of the dashboard may unpickle it. The gadget is
harmless but visible: unpickling it creates a file."""

from __future__ import annotations

import json
import pickle
import zlib
from base64 import b64encode
from pathlib import Path

import pytest
import redis

from tests.integration.dashboard.conftest import Dashboard

JOB, QUEUE = "planted", "standard"


class Gadget:
    """Unpickling it calls ``open(path, "w")``: the file appearing is the code running."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def plant(connection: redis.Redis, marker: Path, field: str) -> None:
    """The job hash, its queue, its failed-registry entry and a busy worker on it, as a
    Redis writer would make them: JSON throughout but for ``field``, which holds the
    pickled gadget (the call, ``data``, zlib-compressed as RQ stores it; or ``meta`` or
    ``result``; or ``results``, the job's result stream)."""
    gadget = pickle.dumps(Gadget(marker))
    fields = {
        "data": zlib.compress(json.dumps(["builtins.print", None, ["x"], {}]).encode()),
        "meta": b"{}", "status": "failed", "origin": QUEUE, "description": "planted",
        "created_at": "2026-12-07T00:00:00.000000Z",
        "enqueued_at": "2026-12-07T00:00:00.000000Z", "timeout": 180}
    if field == "data":
        fields["data"] = zlib.compress(gadget)
    elif field == "results":
        connection.xadd(f"rq:results:{JOB}", {"type": 2, "return_value": b64encode(gadget)})
    else:
        fields[field] = gadget
    connection.hset(f"rq:job:{JOB}", mapping=fields)
    connection.sadd("rq:queues", f"rq:queue:{QUEUE}")
    connection.rpush(f"rq:queue:{QUEUE}", JOB)
    connection.zadd(f"rq:failed:{QUEUE}", {JOB: 9_999_999_999})
    connection.sadd("rq:workers", "rq:worker:fake")
    connection.sadd(f"rq:workers:{QUEUE}", "rq:worker:fake")
    connection.hset("rq:worker:fake", mapping={
        "current_job": JOB, "queues": QUEUE, "state": "busy", "pid": 1,
        "birth": "2026-12-07T00:00:00.000000Z",
        "last_heartbeat": "2026-12-07T00:00:00.000000Z"})


# Every page and action of rq-dashboard that reads a job, and what it must answer:
# 422 (refused: not JSON) where it needs the job, 200 where it does not.
PATHS = [
    ("GET", f"/0/view/job/{JOB}", 422),
    ("GET", f"/0/data/job/{JOB}.json", 422),
    ("GET", "/0/data/workers.json", 422),
    ("GET", "/0/view/workers", 200),
    ("GET", "/0/data/queues.json", 200),
    ("GET", f"/0/data/jobs/{QUEUE}/failed/8/asc/1.json", 422),
    ("GET", f"/0/data/jobs/{QUEUE}/queued/8/asc/1.json", 422),
    ("POST", f"/job/{JOB}/requeue", 422),
    ("POST", f"/requeue/{QUEUE}", 422),
    ("POST", f"/job/{JOB}/delete", 422),
    ("POST", f"/queue/{QUEUE}/failed/empty", 422),
]


@pytest.mark.parametrize("field", ["meta", "result", "data"])
@pytest.mark.parametrize(("method", "path", "status"), PATHS, ids=[p for _, p, _ in PATHS])
def test_dashboard_never_unpickles(dashboard: Dashboard, rq_redis: redis.Redis,
                                   tmp_path: Path, method: str, path: str, status: int,
                                   field: str) -> None:
    marker = tmp_path / "unpickled"
    plant(rq_redis, marker, field)
    with dashboard.client() as http:
        answer = http.request(method, path)
    assert not marker.exists(), f"{method} {path} unpickled the planted gadget"
    assert answer.status_code == status, (answer.status_code, answer.text)
    if status == 422:
        assert "not JSON" in answer.json()["detail"]
    # Refused means untouched: the job is neither deleted nor requeued.
    assert rq_redis.exists(f"rq:job:{JOB}")
    assert rq_redis.zscore(f"rq:failed:{QUEUE}", JOB) is not None
    assert dashboard.proc.alive(), dashboard.proc.log_tail()


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _ in PATHS],
                         ids=[p for _, p, _ in PATHS])
def test_a_pickled_result_in_the_result_stream_is_never_unpickled(
        dashboard: Dashboard, rq_redis: redis.Redis, tmp_path: Path, method: str,
        path: str) -> None:
    # The job hash is sound; only its latest result (what the job page and the lists
    # show) is pickled. Paths that never read results may go ahead; none may unpickle.
    marker = tmp_path / "unpickled"
    plant(rq_redis, marker, "results")
    with dashboard.client() as http:
        answer = http.request(method, path)
    assert not marker.exists(), f"{method} {path} unpickled the planted result"
    assert answer.status_code in (200, 422), (answer.status_code, answer.text)
    if "/data/job/" in path or "/data/jobs/" in path:
        assert answer.status_code == 422, answer.text
