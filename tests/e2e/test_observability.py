"""Observability through real processes: what an operator reads while jobs run.

One system, with every metrics endpoint on (free ports), JSON logs and tracing to a tiny
OTLP/HTTP receiver this test runs on 127.0.0.1:

* /metrics of the kernel, the data service, the worker executor and the dispatcher move
  by exactly what ran, and queue depths follow a backlog up and down;
* GET /api/v1/stats shows the jobs (admins only);
* a cancelled job is cancelled in RQ too (rq-dashboard agrees);
* one grep of a job id finds a JSON line of every process, with one trace id, and one
  trace holds the job's spans from the kernel, the data service, the dispatcher and
  the worker.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue
from rq.registry import CanceledJobRegistry
from rq.serializers import JSONSerializer

from backend.local.embedded import free_port
from tests.e2e.conftest import E2E_USER, System, _start_system, wait_for
from tests.services import create_user, sign_in

pytestmark = pytest.mark.e2e


class Receiver:
    """An OTLP/HTTP trace receiver: keeps every span it is sent, decoded."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the exporter's POST /v1/traces
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest.FromString(body)
                receiver.add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value
                          for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    with self.lock:
                        self.spans.append({
                            "service": attributes.get("service.name"),
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_id": span.parent_span_id.hex(),
                            "attributes": {a.key: a.value.string_value
                                           for a in span.attributes},
                        })

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [span for span in self.spans if span["trace_id"] == trace_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture(scope="module")
def system(log_dir: Path, receiver: Receiver) -> Iterator[System]:
    folder = log_dir / "observability"
    folder.mkdir(exist_ok=True)
    running = _start_system("redis", folder, {
        "METRICS_PORT": str(free_port()),
        "DISPATCHER_METRICS_PORT": str(free_port()),
        "LOG_FORMAT": "json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        # The SDK's own knob: export every 200 ms rather than every 5 s.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    })
    yield running
    running.stop_all()


# --- reading /metrics -----------------------------------------------------------------------

def scrape(url: str, token: str | None = None) -> dict[tuple[str, frozenset], float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(url, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}


def value(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def kernel_metrics(system: System) -> str:
    return f"{system.api_url}/metrics"


def store_metrics(system: System) -> str:
    return f"{system.store_url}/metrics"


def workers_metrics(system: System) -> str:
    return f"http://127.0.0.1:{system.env['METRICS_PORT']}/metrics"


def dispatcher_metrics(system: System) -> str:
    return f"http://127.0.0.1:{system.env['DISPATCHER_METRICS_PORT']}/metrics"


ECHO = {"task": "echo", "executor": "standard"}
FAIL = {"task": "fail", "executor": "standard"}


def test_counters_move_by_exactly_what_ran(system: System):
    before = {name: scrape(url(system)) for name, url in (
        ("kernel", kernel_metrics), ("workers", workers_metrics),
        ("dispatcher", dispatcher_metrics), ("store", store_metrics))}
    echoes = [system.submit("echo", {"n": n}) for n in range(5)]
    failed = system.submit("fail", {"permanent": True})
    for job_id in echoes:
        assert system.wait_final(job_id)["status"] == "succeeded"
    assert system.wait_final(failed)["status"] == "failed"
    wait_for(lambda: failed in system.dead_letter_ids(), 30, "the dead letter")

    def moved(part: str, url: str, name: str, labels: dict[str, str]) -> float:
        return value(scrape(url), name, **labels) - value(before[part], name, **labels)

    assert moved("kernel", kernel_metrics(system), "taskbroker_jobs_submitted_total", ECHO) == 5
    assert moved("kernel", kernel_metrics(system), "taskbroker_jobs_submitted_total", FAIL) == 1
    workers = workers_metrics(system)
    assert moved("workers", workers, "taskbroker_jobs_started_total", ECHO) == 5
    assert moved("workers", workers, "taskbroker_jobs_succeeded_total", ECHO) == 5
    assert moved("workers", workers, "taskbroker_jobs_failed_total", ECHO) == 0
    assert moved("workers", workers, "taskbroker_jobs_failed_total", FAIL) == 1
    assert moved("workers", workers, "taskbroker_jobs_retried_total", FAIL) == 0
    assert moved("workers", workers, "taskbroker_job_run_seconds_count", {"task": "echo"}) == 5
    assert moved("workers", workers, "taskbroker_job_queue_wait_seconds_count",
                 {"task": "echo"}) == 5
    wait_for(lambda: moved("dispatcher", dispatcher_metrics(system),
                           "taskbroker_jobs_dead_lettered_total", FAIL) == 1, 30,
             "the dead letter to be counted")
    assert moved("dispatcher", dispatcher_metrics(system),
                 "taskbroker_jobs_dead_lettered_total", ECHO) == 0
    # The data service's requests by route template, the kernel's calls to it by route.
    store = scrape(store_metrics(system))
    assert value(store, "taskbroker_http_requests_total", method="POST", path="/reports",
                 status_code="200", app_name="store") > 0
    kernel = scrape(kernel_metrics(system))
    assert value(kernel, "taskbroker_data_service_request_seconds_count", method="POST",
                 route="/jobs/bulk", outcome="2xx") >= 6
    assert value(kernel, "taskbroker_http_requests_total", method="GET",
                 path="/api/v1/jobs/{job_id}", status_code="200", app_name="api") > 0
    # Labels stay few: no job id anywhere in any endpoint's series.
    for url in (kernel_metrics, store_metrics, workers_metrics, dispatcher_metrics):
        assert not any(echoes[0] in str(key) for key in scrape(url(system)))


def test_a_retried_job_counts_its_attempts(system: System):
    before = scrape(workers_metrics(system))
    job = system.wait_final(system.submit("fail", {"succeed_on_attempt": 2}))
    assert job["status"] == "succeeded"
    after = scrape(workers_metrics(system))
    for name, moved in (("taskbroker_jobs_started_total", 2),
                        ("taskbroker_jobs_retried_total", 1),
                        ("taskbroker_jobs_succeeded_total", 1),
                        ("taskbroker_jobs_failed_total", 0)):
        assert value(after, name, **FAIL) - value(before, name, **FAIL) == moved, name


def test_queue_depths_and_workers_follow_a_backlog(system: System):
    busy = scrape(workers_metrics(system))
    assert value(busy, "taskbroker_workers", state="idle") == 2
    system.workers.stop()
    ids = [system.submit("echo", {"n": n}) for n in range(4)]

    def rq_depth() -> float:
        return value(scrape(dispatcher_metrics(system)), "taskbroker_queue_depth",
                     queue="standard", kind="rq")

    wait_for(lambda: rq_depth() == 4, 30, "the RQ queue depth to show the backlog")
    samples = scrape(dispatcher_metrics(system))
    queue = system.env["STANDARD_QUEUE_NAME"]
    assert ("taskbroker_queue_depth",
            frozenset({"queue": queue, "kind": "standard"}.items())) in samples
    assert ("taskbroker_queue_depth",
            frozenset({"queue": "taskbroker:reports", "kind": "reports"}.items())) in samples
    assert value(samples, "taskbroker_queue_depth", queue=f"{queue}-dlq",
                 kind="dead-letter") >= 1  # the failed job of the first test
    stats = system.http.get(f"{system.api_url}/api/v1/stats").json()
    assert {"name": "standard", "kind": "rq", "depth": 4} in stats["queues"]
    assert stats["workers"] == {"online": 0, "busy": 0, "idle": 0}

    system.start_workers()
    for job_id in ids:
        assert system.wait_final(job_id)["status"] == "succeeded"
    wait_for(lambda: rq_depth() == 0, 30, "the RQ queue depth to fall back to 0")
    assert value(scrape(workers_metrics(system)), "taskbroker_workers", state="idle") == 2


def test_stats_show_what_ran_to_admins_only(system: System):
    echo = system.submit("echo", {"x": 1})
    failed = system.submit("fail", {"permanent": True, "message": "stats saw this"})
    system.wait_final(echo)
    system.wait_final(failed)

    def stats() -> dict[str, Any]:
        answer = system.http.get(f"{system.api_url}/api/v1/stats")
        assert answer.status_code == 200, answer.text
        return answer.json()

    body = wait_for(lambda: (lambda s: s if any(f["id"] == failed
                                                for f in s["recent_failures"]) else None)(
        stats()), 30, "the failure in the statistics")
    assert len(body["minutes"]) == 60
    assert body["generated_at"].endswith("Z") and body["minutes"][-1]["minute"].endswith("Z")
    assert sum(m["succeeded"] for m in body["minutes"]) >= 6  # every echo of this module
    assert sum(m["failed"] for m in body["minutes"]) >= 2
    [failure] = [f for f in body["recent_failures"] if f["id"] == failed]
    assert failure["name"] == "fail" and failure["user_id"] == E2E_USER
    assert "stats saw this" in failure["error"]
    assert body["recent_failures"][0]["id"] == failed  # newest first
    [echo_times] = [t for t in body["tasks"] if t["task"] == "echo"]
    assert echo_times["runs"] >= 6 and echo_times["run_p95_ms"] >= echo_times["run_p50_ms"] > 0
    assert echo_times["wait_p95_ms"] >= echo_times["wait_p50_ms"] > 0
    assert body["workers"]["online"] == 2
    assert {q["kind"] for q in body["queues"]} == {"standard", "rq", "dead-letter", "reports"}

    create_user(system.store_url, "plain-user")
    token = sign_in(system.api_url, "plain-user")
    refused = httpx.get(f"{system.api_url}/api/v1/stats",
                        headers={"Authorization": f"Bearer {token}"}, timeout=15)
    assert refused.status_code == 403
    assert "admin" in refused.json()["detail"]


def test_a_cancelled_queued_job_is_cancelled_in_rq_too(system: System):
    system.workers.stop()
    job_id = system.submit("echo", {"never": "runs"})
    queue = Queue("standard", connection=system.redis, serializer=JSONSerializer)
    wait_for(lambda: job_id in queue.job_ids, 30, "the job to wait in RQ")
    before = value(scrape(kernel_metrics(system)), "taskbroker_jobs_cancelled_total", **ECHO)
    answer = system.cancel(job_id)
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    assert job_id not in queue.job_ids
    assert job_id in CanceledJobRegistry("standard", connection=system.redis,
                                         serializer=JSONSerializer).get_job_ids()
    assert value(scrape(kernel_metrics(system)), "taskbroker_jobs_cancelled_total",
                 **ECHO) - before == 1
    system.start_workers()
    assert system.job(job_id)["status"] == "cancelled"


def test_a_job_cancelled_while_it_runs_ends_cancelled_in_rq(system: System):
    job_id = system.submit("simulate", {"duration": 30}, estimated_time=30)
    system.wait_status(job_id, "running")
    assert system.cancel(job_id).status_code == 200
    registry = CanceledJobRegistry("standard", connection=system.redis,
                                   serializer=JSONSerializer)
    wait_for(lambda: job_id in registry.get_job_ids(), 30, "RQ to file the job cancelled")
    assert system.redis.hget(f"rq:job:{job_id}", "status") == b"canceled"


# --- one job, followed through every process -------------------------------------------------

def json_lines(path: Path, job_id: str) -> list[dict[str, Any]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if job_id not in line or not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("job_id") == job_id:
            found.append(record)
    return found


def test_one_grep_follows_a_job_through_every_process_in_one_trace(system: System,
                                                                   receiver: Receiver):
    job_id = system.submit("echo", {"follow": "me"})
    assert system.wait_final(job_id)["status"] == "succeeded"
    logs = [system.processes[role].log_path for role in ("api", "dispatcher", "workers", "store")]

    def lines_by_role() -> dict[str, dict[str, Any]] | None:
        found = {record["role"]: record for path in logs for record in json_lines(path, job_id)}
        return found if {"api", "dispatcher", "worker", "store"} <= set(found) else None

    found = wait_for(lines_by_role, 30, "a JSON line about the job from every process")
    for record in found.values():
        assert {"timestamp", "level", "logger", "message", "role", "job_id"} <= set(record)
    trace_ids = {record["trace_id"] for record in found.values()}
    assert len(trace_ids) == 1, found
    [trace_id] = trace_ids
    assert len(trace_id) == 32 and int(trace_id, 16)  # the W3C trace id: tracing is on

    wanted = {"taskbroker-api", "taskbroker-store", "taskbroker-dispatcher",
              "taskbroker-worker"}

    def whole_trace() -> list[dict[str, Any]] | None:
        spans = receiver.trace(trace_id)
        return spans if wanted <= {span["service"] for span in spans} and any(
            span["name"] == "apply report" for span in spans) else None

    spans = wait_for(whole_trace, 30, "the job's spans from every process")
    by_id = {span["span_id"]: span for span in spans}
    [run] = [span for span in spans if span["name"] == "run echo"]
    assert run["service"] == "taskbroker-worker"
    assert run["attributes"]["taskbroker.job_id"] == job_id
    # The run hangs under the submit request: parent links lead back to the kernel.
    chain, span = [], run
    while span["parent_id"] and span["parent_id"] in by_id:
        span = by_id[span["parent_id"]]
        chain.append(span["service"])
    assert chain and chain[-1] == "taskbroker-api", chain
    # The kernel's call to record the job carried the trace to the data service.
    assert any(span["service"] == "taskbroker-store" and span["name"].startswith("POST")
               for span in spans)
    assert any(span["service"] == "taskbroker-dispatcher" and span["name"] == "dispatch"
               for span in spans)


# --- a restricted /metrics ----------------------------------------------------------------

def status_of(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return None  # not listening yet


def test_metrics_token_restricts_every_endpoint(system: System):
    token = "metrics-test-token"
    system.api.stop()
    system.dispatcher.stop()
    system.start_api(METRICS_TOKEN=token)
    system.start_dispatcher(METRICS_TOKEN=token)
    try:
        for url in (kernel_metrics(system), dispatcher_metrics(system)):
            wait_for(lambda url=url: status_of(url) == 401, 30, f"{url} to want the token")
            assert httpx.get(url, headers={"Authorization": "Bearer wrong"},
                             timeout=5).status_code == 401
            assert value(scrape(url, token), "taskbroker_jobs_submitted_total", **ECHO) >= 0
        # Without a token configured, the same endpoint is open (the workers' here).
        assert httpx.get(workers_metrics(system), timeout=5).status_code == 200
    finally:
        system.api.stop()
        system.dispatcher.stop()
        system.start_api()
        system.start_dispatcher()
