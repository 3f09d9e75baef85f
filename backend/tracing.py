"""Tracing with OpenTelemetry: one trace per job, from the submit to the worker's run.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: then each process sends its spans over
OTLP/HTTP (batched, in the background) as service ``<OTEL_SERVICE_NAME>-<role>``. The
trace of a job:

* the kernel's submit request (Litestar's OpenTelemetry plugin; an incoming W3C
  ``traceparent`` is honoured), and its data-service calls (client spans, the
  ``traceparent`` header sent on, so the data service's own request spans join);
* the queue message carries the W3C ``traceparent`` (:class:`backend.jobs.QueueMessage`)
  and its ``trace_id`` is the trace's id;
* the dispatcher's ``dispatch`` span, the worker's ``run <task>`` span (each a child of
  the message's context), and the data service's ``apply report`` span for the job's
  final report (the report carries the ``traceparent`` too).

With tracing off nothing here costs more than a check of :func:`enabled`, and the
``trace_id`` of a message is a random id (or the submit's ``X-Trace-Id``), as before.

The provider is this module's own (not the API's global one), so tests can install an
in-memory exporter (:func:`configure_tracing` with ``exporter=``) more than once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from backend.settings import ObservabilitySettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
INSTRUMENTATION = "taskbroker"
_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer = trace.NoOpTracer()


def configure_tracing(settings: ObservabilitySettings, role: str, *,
                      exporter: SpanExporter | None = None, batch: bool = True) -> bool:
    """Trace this process as ``<OTEL_SERVICE_NAME>-<role>`` if an endpoint is set (or an
    ``exporter`` is given, for tests); returns whether tracing is on."""
    global _provider, _tracer
    endpoint = settings.otel_exporter_otlp_endpoint.strip()
    if not endpoint and exporter is None:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    shutdown_tracing()
    service = f"{settings.otel_service_name}-{role}" if role else settings.otel_service_name
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    _provider, _tracer = provider, provider.get_tracer(INSTRUMENTATION)
    if endpoint:
        log.info("tracing on: spans of %s go to %s", service, endpoint)
    return True


def shutdown_tracing() -> None:
    """Send the spans still buffered, then stop tracing (at the end of a process)."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, trace.NoOpTracer()
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    return _provider is not None


def provider() -> TracerProvider | None:
    return _provider


def tracer() -> trace.Tracer:
    return _tracer


def litestar_plugins(*, exclude: list[str]) -> list[Any]:
    """Litestar's OpenTelemetry plugin (server spans of every request but ``exclude``), or
    nothing when tracing is off."""
    if _provider is None:
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    return [OpenTelemetryPlugin(OpenTelemetryConfig(
        tracer_provider=_provider, exclude=exclude, exclude_spans=["receive", "send"]))]


def current_trace() -> tuple[str, str] | None:
    """``(trace_id, traceparent)`` of the current span, if one is being recorded."""
    span = trace.get_current_span()
    span_context = span.get_span_context()
    if not span_context.is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return trace.format_trace_id(span_context.trace_id), carrier.get(TRACEPARENT, "")


def inject(headers: dict[str, str]) -> None:
    """Add the current span's ``traceparent`` to outgoing ``headers``."""
    _propagator.inject(headers)


def parent(traceparent: str | None) -> otel_context.Context | None:
    """The context a ``traceparent`` names (None for none or a malformed one)."""
    if not traceparent:
        return None
    extracted = _propagator.extract({TRACEPARENT: traceparent})
    return extracted if trace.get_current_span(extracted).get_span_context().is_valid else None


@contextmanager
def span(name: str, *, traceparent: str | None = None, kind: SpanKind = SpanKind.INTERNAL,
         attributes: dict[str, Any] | None = None) -> Iterator[trace.Span | None]:
    """A span named ``name`` (child of ``traceparent`` if given, else of the current
    span); yields None and costs nothing when tracing is off."""
    if _provider is None:
        yield None
        return
    with _tracer.start_as_current_span(name, context=parent(traceparent), kind=kind,
                                       attributes=attributes,
                                       record_exception=True,
                                       set_status_on_exception=True) as current:
        yield current


def mark_failed(current: trace.Span | None, description: str) -> None:
    """Mark ``current`` (from :func:`span`) as an error."""
    if current is not None:
        current.set_status(Status(StatusCode.ERROR, description[:200]))


def inject_into(headers: dict[str, str], current: trace.Span) -> None:
    """Add the ``traceparent`` of ``current`` (not necessarily the active span)."""
    _propagator.inject(headers, context=trace.set_span_in_context(current))
