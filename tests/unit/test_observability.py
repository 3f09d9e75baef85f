"""Logs, traces, metrics and statistics in one process: the pieces the e2e tests
(tests/e2e/test_observability.py) then follow through real processes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import pytest
from aiohttp import web
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from backend import stats, tracing
from backend.api.submit import queue_message
from backend.jobs import JobExecutionRequest, JobStatus
from backend.logs import configure_logging, job_context, job_fields
from backend.metrics import DATA_SERVICE_SECONDS, authorized, family_names
from backend.settings import ObservabilitySettings
from backend.store.client import DataServiceClient
from backend.store.client_trace import route_of
from backend.workers.middleware.tracing import Tracing

# --- logs -----------------------------------------------------------------------------------

def test_json_logs_carry_the_role_and_the_job_being_handled(capsys: pytest.CaptureFixture):
    configure_logging("INFO", role="dispatcher", fmt="json")
    try:
        log = logging.getLogger("backend.test")
        with job_context("665f0c2e9b1e8a3f4c2d1a0b", "4bf92f3577b34da6a3ce929d0e0e4736"):
            log.info("dispatched %s", "it")
        log.info("one of a batch", extra=job_fields("665f0c2e9b1e8a3f4c2d1a0c", "t2"))
        log.warning("about nothing in particular")
    finally:
        configure_logging("INFO")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"] == "dispatched it" and lines[0]["level"] == "INFO"
    assert lines[0]["logger"] == "backend.test" and lines[0]["role"] == "dispatcher"
    assert lines[0]["job_id"] == "665f0c2e9b1e8a3f4c2d1a0b"
    assert lines[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert datetime.fromisoformat(lines[0]["timestamp"]).tzinfo is not None
    assert (lines[1]["job_id"], lines[1]["trace_id"]) == ("665f0c2e9b1e8a3f4c2d1a0c", "t2")
    assert "job_id" not in lines[2]  # the context ended with the block


def test_text_logs_stay_the_default(capsys: pytest.CaptureFixture):
    configure_logging("INFO")
    logging.getLogger("backend.test").info("plain %d", 1)
    err = capsys.readouterr().err
    assert "INFO" in err and "backend.test: plain 1" in err and not err.startswith("{")


# --- tracing --------------------------------------------------------------------------------

@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing(ObservabilitySettings(_env_file=None), "test",
                              exporter=exporter, batch=False)
    yield exporter
    tracing.shutdown_tracing()


def test_tracing_is_off_unless_an_endpoint_is_set():
    assert not tracing.configure_tracing(ObservabilitySettings(_env_file=None), "api")
    assert not tracing.enabled()
    with tracing.span("nothing") as current:
        assert current is None
    assert tracing.current_trace() is None


def test_the_submit_trace_becomes_the_messages_and_the_run_continues_it(
        spans: InMemorySpanExporter):
    request = JobExecutionRequest(job_name="echo", estimated_time=1)
    assert queue_message("665f0c2e9b1e8a3f4c2d1a0b", request, "standard",
                         "given-id").trace_id == "given-id"  # no span: as before
    with tracing.span("POST /api/v1/job_executor/async", kind=SpanKind.SERVER) as submit:
        message = queue_message("665f0c2e9b1e8a3f4c2d1a0b", request, "standard", "given-id")
    assert submit is not None
    trace_id = f"{submit.get_span_context().trace_id:032x}"
    assert message.trace_id == trace_id
    assert message.traceparent.startswith(f"00-{trace_id}-")

    class Run:  # what the Tracing hook reads of a JobRun
        attempt = 1
        worker_id = "w1"

    run: Any = Run()
    run.message = message
    assert Tracing().around(run, lambda: "result") == "result"
    by_name = {span.name: span for span in spans.get_finished_spans()}
    worker = by_name["run echo"]
    assert worker.context.trace_id == submit.get_span_context().trace_id
    assert worker.parent is not None
    assert worker.parent.span_id == submit.get_span_context().span_id
    assert worker.attributes["taskbroker.job_id"] == "665f0c2e9b1e8a3f4c2d1a0b"
    assert worker.resource.attributes["service.name"] == "taskbroker-test"


def test_a_malformed_traceparent_starts_a_trace_of_its_own(spans: InMemorySpanExporter):
    assert tracing.parent("not a traceparent") is None
    with tracing.span("dispatch", traceparent="00-zz-yy-01") as current:
        assert current is not None and current.parent is None


async def test_data_service_calls_carry_the_trace_and_are_timed(spans: InMemorySpanExporter):
    seen: list[str] = []

    async def job(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent", ""))
        return web.json_response({"detail": "no such job"}, status=404)

    app = web.Application()
    app.router.add_get("/job/{job_id}", job)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = DataServiceClient(f"http://127.0.0.1:{port}", deadline=1)
    labels = ("GET", "/job/{id}", "4xx")
    before = DATA_SERVICE_SECONDS.labels(*labels)._sum.get()
    try:
        with tracing.span("GET /api/v1/jobs/{job_id}", kind=SpanKind.SERVER) as parent:
            with pytest.raises(Exception, match="not found"):
                await client.get_job("665f0c2e9b1e8a3f4c2d1a0b")
    finally:
        await client.stop()
        await runner.cleanup()
    assert parent is not None
    [call] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert call.name == "data service GET /job/{id}"
    assert call.parent is not None and call.parent.span_id == parent.get_span_context().span_id
    trace_id = f"{parent.get_span_context().trace_id:032x}"
    assert seen and seen[0].startswith(f"00-{trace_id}-{call.context.span_id:016x}")
    assert DATA_SERVICE_SECONDS.labels(*labels)._sum.get() > before


# --- metrics --------------------------------------------------------------------------------

def test_routes_keep_ids_and_names_out_of_the_labels():
    assert route_of("/job/665f0c2e9b1e8a3f4c2d1a0b") == "/job/{id}"
    assert route_of("/tokens/0123456789abcdef0123456789abcdef/used") == "/tokens/{id}/used"
    assert route_of("/users/alice") == "/users/{username}"
    assert route_of("/users/check") == "/users/check"
    assert route_of("/jobs/bulk") == "/jobs/bulk"
    assert route_of("/weird/Some.Thing@x") == "/weird/{param}"


def test_a_metrics_token_is_a_bearer_token_compared_whole():
    assert authorized(None, "")  # no token set: open
    assert authorized("Bearer s3cret", "s3cret")
    assert authorized("bearer s3cret", "s3cret")
    for header in (None, "", "Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret"):
        assert not authorized(header, "s3cret"), header


def test_family_names_include_the_suffixes_prometheus_exposes():
    names = family_names()
    assert {"taskbroker_jobs_succeeded_total", "taskbroker_job_run_seconds_bucket",
            "taskbroker_queue_depth", "taskbroker_http_requests_total",
            "taskbroker_http_request_duration_seconds_bucket"} <= names
    assert "taskbroker_jobs_succeeded" not in names


# --- statistics (Redis logic; the e2e test runs it on a real Redis) ------------------------

async def test_each_end_is_noted_once_and_shows_in_its_minute():
    connection = fakeredis.FakeAsyncRedis()
    now = datetime.now(UTC)
    done = stats.Finish(job_id="665f0c2e9b1e8a3f4c2d1a0b", status=JobStatus.SUCCEEDED,
                        finished_at=now, task="echo", run_ms=4.0, wait_ms=20.0)
    assert await stats.record(connection, [done]) == 1
    assert await stats.record(connection, [done]) == 0  # a replayed report adds nothing
    late = stats.Finish(job_id=done.job_id, status=JobStatus.CANCELLED, finished_at=now)
    assert await stats.record(connection, [late]) == 0  # nor a second end of the same job
    failed = stats.Finish(job_id="665f0c2e9b1e8a3f4c2d1a0c", status=JobStatus.FAILED,
                          finished_at=now - timedelta(minutes=2), task="fail", run_ms=1.0,
                          error="x" * 2000)
    assert await stats.record(connection, [failed]) == 1
    minutes = await stats.minutes(connection, now)
    assert len(minutes) == 60 and minutes[-1].minute <= now < minutes[-1].minute + \
        timedelta(minutes=1)
    assert minutes[-1].succeeded == 1 and minutes[-3].failed == 1
    assert sum(m.cancelled for m in minutes) == 0
    [echo, fail] = await stats.task_times(connection)
    assert (echo.task, echo.runs, echo.run_p50_ms, echo.wait_p95_ms) == ("echo", 1, 4.0, 20.0)
    assert (fail.task, fail.wait_p50_ms) == ("fail", 0.0)
    [failure] = await stats.failures(connection)
    assert failure.id == failed.job_id and len(failure.error) == stats.ERROR_CHARS


async def test_no_data_is_zeros_and_empty_lists():
    connection = fakeredis.FakeAsyncRedis()
    minutes = await stats.minutes(connection, datetime.now(UTC))
    assert len(minutes) == 60 and not any(m.succeeded or m.failed or m.cancelled
                                          for m in minutes)
    assert await stats.task_times(connection) == []
    assert await stats.failures(connection) == []
    assert await stats.workers(connection) == stats.Workers()


def test_percentiles_are_nearest_rank():
    values = sorted(float(n) for n in range(1, 101))
    assert stats.percentile(values, 0.5) == 50.0
    assert stats.percentile(values, 0.95) == 95.0
    assert stats.percentile([], 0.5) == 0.0
